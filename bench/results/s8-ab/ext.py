import json,sys,statistics as st
# ext.py RATE FILE... : per file, the steps at RATE: deliver p99 and msgs/CPU-s; then medians
for rate in sys.argv[1].split(','):
  rate=float(rate); p99=[]; mc=[]
  for f in sys.argv[2:]:
    r=json.load(open(f))
    for s in r['steps']:
      if s['rate']==rate:
        p99.append(s['deliver_latency']['p99_ms']); mc.append(s['messages_per_server_cpu_s'])
  print(f"  {rate:.0f}: n={len(p99)} deliver p99 median {st.median(p99):.2f} ms (range {min(p99):.2f}-{max(p99):.2f}); msgs/CPU-s median {st.median(mc):,.0f} (range {min(mc):,.0f}-{max(mc):,.0f})")
