#!/usr/bin/env python3
# parse.py TAG [TAG...]: medians per rate x binary of the W2 runs in runs/TAG-{base,new}-RATE-REP.*
import glob, re, statistics as st, sys, collections, os
os.chdir('/tmp/s3-commit')
rows = collections.defaultdict(list)
for tag in sys.argv[1:]:
    for txt in glob.glob(f'runs/{tag}-*-*-*.txt'):
        base = txt[:-4]
        m = re.match(rf'runs/{tag}-(\w+)-(\d+)-(\d+)$', base)
        if not m: continue
        b, rate = m.group(1), int(m.group(2))
        line = [l for l in open(txt) if re.match(r'^\s*\d+\s+\d+\s', l)]
        if not line: continue
        f = line[0].split()
        r = dict(ackp50=float(f[2]), ackp99=float(f[3]), p50=float(f[4]), p90=float(f[5]), p99=float(f[6]),
                 cpu=float(f[12]), mpc=float(f[13]), passed=f[14])
        met = {}
        for l in open(base + '.metrics'):
            mm = re.match(r'^(chatd_store_batch_size|chatd_store_commit_window_seconds)_(sum|count) (\S+)', l)
            if mm: met[mm.group(1) + '_' + mm.group(2)] = float(mm.group(3))
        r['commits_per_msg'] = met['chatd_store_batch_size_count'] / met['chatd_store_batch_size_sum']
        r['window_frac'] = met.get('chatd_store_commit_window_seconds_count', 0) / met['chatd_store_batch_size_count']
        thr = {}
        for l in open(base + '.stat'):
            p = l.strip().split(',')
            if len(p) < 4 or 'not counted' in p[1]: continue
            tid = int(p[0].rsplit('-', 1)[1])
            thr.setdefault(tid, {})[p[3]] = float(p[1])
        tids = sorted(thr)
        msgs = rate * 3.0
        # thread order: main, 2 readers, writer, 2 hashers, I/O threads (last two)
        allt = sorted(thr)
        w = allt[0] if len(allt) == 3 else None
        # perf lists only threads that ran; pick writer as busiest non-I/O thread
        io = allt[-2:]
        rest = [t for t in allt if t not in io]
        w = max(rest, key=lambda t: thr[t].get('task-clock', 0))
        r['writer_us'] = thr[w]['task-clock'] * 1000 / msgs
        r['io_us'] = sum(thr[t]['task-clock'] for t in io) * 1000 / msgs
        r['cs_per_msg'] = sum(thr[t].get('context-switches', 0) for t in [w] + io) / msgs
        r['writer_cs'] = thr[w].get('context-switches', 0) / msgs
        rows[(rate, b)].append(r)
keys = ['commits_per_msg', 'window_frac', 'writer_us', 'io_us', 'cs_per_msg', 'writer_cs', 'mpc', 'p50', 'p90', 'p99', 'ackp99']
print('| rate | bin | n | ' + ' | '.join(keys) + ' | pass |')
print('|' + '---|' * (len(keys) + 4))
for (rate, b) in sorted(rows, key=lambda k: (k[0], k[1] != 'base')):
    rs = rows[(rate, b)]
    vals = []
    for k in keys:
        v = st.median(x[k] for x in rs)
        vals.append(f'{v:.3f}' if v < 10 else f'{v:.0f}' if v > 100 else f'{v:.1f}')
    print(f'| {rate} | {b} | {len(rs)} | ' + ' | '.join(vals) + ' | ' + ''.join('y' if x['passed']=='yes' else 'n' for x in rs) + ' |')
