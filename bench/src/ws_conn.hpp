#pragma once

#include "net.hpp"

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bench {

// The wire protocol of the server under test. chatd is the product; the others are the peers of
// ../shared/peers, spoken here so the same driver measures them too (W2 and W3 only):
//   nats      NATS client protocol over nats-server's WebSocket listener (CONNECT with a token,
//             SUB u.<user> and g.<group>, PUB, MSG; no persistence, no acks)
//   socketio  Engine.IO v4 / Socket.IO v4 over WebSocket, the peers' reference server
//             (peers/socketio/server.js: auth token in CONNECT, "join", "dm", "room", "msg", acks)
enum class Proto { chatd, nats, socketio };

// What a worker knows about one connection before it opens it (filled in by the coordinator's
// setup, inherited by the worker through fork()).
struct ConnSpec {
  int user = 0;         // user index u<user>
  std::string token;    // chatd: access token; nats: the shared auth token; socketio: HMAC token
  std::string conv_id;  // chatd: conversation id; nats: subject; socketio: room or partner user
  int group = -1;       // pair (W2, W5) or group (W3) index: deliveries are expected by the others
  Proto proto = Proto::chatd;
  bool group_conv = false;  // peers: conv_id is a group (subscribe / join it when connecting)
};

class WsConn;

// Receives what a connection reads; implemented by the Worker. Called on the worker's only thread.
class ConnListener {
 public:
  virtual ~ConnListener() = default;
  virtual void on_frame(WsConn& conn, std::string_view frame) = 0;
  virtual void on_closed(WsConn& conn, std::string_view reason) = 0;
};

// One WebSocket client connection (RFC 6455, client side, written here rather than with Beast's
// stream: the driver must never be the bottleneck, and Beast's per-message read cost was ~3.4 us of
// driver CPU per delivery in W3, more than chatd spent). Callback style on a single-threaded
// io_context: reads go into one buffer and every complete frame in it is handed over as a view
// (server frames are unmasked; continuation frames are joined); sends are masked and gathered, one
// write in flight. Connect = TCP + HTTP upgrade + the protocol's login: chatd auth frame + `ready`;
// NATS INFO, CONNECT + SUBs + PING, PONG; Socket.IO open, CONNECT with the token, its ack, and
// "join" + its ack for a group. Pings are answered with pongs.
class WsConn : public std::enable_shared_from_this<WsConn> {
 public:
  using ConnectDone = std::function<void(bool ok, std::string_view error)>;

  WsConn(net::io_context& ioc, ConnListener& listener, const ConnSpec& spec, int slot);

  void connect(const tcp::endpoint& server, const net::ip::address& local, ConnectDone done);
  void send(std::string_view frame);
  void close();

  const ConnSpec& spec() const noexcept { return spec_; }
  int slot() const noexcept { return slot_; }
  bool ready() const noexcept { return ready_; }
  std::int64_t heartbeat_ms() const noexcept { return heartbeat_ms_; }

  // Per-connection bookkeeping the worker keeps here to avoid a lookup per frame.
  std::int64_t next_ping_ns = 0;
  int inflight = 0;            // pipelined sends without ack/error yet
  std::string last_conv;       // dedupe: conversation of last_seq
  std::int64_t last_seq = -1;  // highest seq seen in last_conv
  // Seqs last_seq - i (bit i) already seen in last_conv: a frame that arrives after a higher seq
  // (a cluster's nodes publish through Redis independently, so a recipient can see seq 6 from one
  // node before seq 5 from another) counts once as delivered and as reordered, a repeat as a dup.
  std::uint64_t seen_window = 0;
  // Peers carry no per-conversation seq: dedupe by (sender, seq of the body), which increases per
  // sender (one worker's counter) and arrives in order on these single-connection paths.
  std::unordered_map<std::int64_t, std::int64_t> last_by_sender;
  std::string rx_partial;  // NATS: a protocol message split across WebSocket frames

 private:
  // check(frame): 1 done, 0 read the next frame, -1 refused (the frame is the reason).
  using FrameCheck = std::function<int(std::string_view)>;
  void fail_connect(std::string_view what, const boost::system::error_code& ec);
  void read_upgrade_response();
  void login();
  void expect(FrameCheck check, std::function<void()> next);
  void write_then_expect(std::string_view frame, FrameCheck check, std::function<void()> next);
  void finish_connect();
  void do_read();
  bool parse_frames();  // false: the connection is done (closed, protocol error)
  void on_message(std::string_view payload);
  void queue_frame(unsigned char opcode, std::string_view payload);
  void do_write();
  void closed_by(std::string reason);

  tcp::socket sock_;
  net::steady_timer login_timer_;
  std::vector<char> rbuf_;  // [0, rlen_) read, not yet parsed
  std::size_t rlen_ = 0;
  std::string fragments_;          // payload of a message whose FIN has not come yet
  std::string wq_;                 // encoded frames waiting for the write in flight
  std::string wbuf_;               // the write in flight
  std::vector<std::string> held_;  // application frames sent before the login completed
  std::uint64_t mask_state_;
  ConnListener& listener_;
  ConnSpec spec_;
  int slot_;
  std::string host_;
  std::string target_;
  FrameCheck login_check_;
  std::function<void()> login_next_;
  ConnectDone connect_done_;
  std::int64_t heartbeat_ms_ = 30000;
  bool ready_ = false;
  bool writing_ = false;
  bool closed_ = false;
};

}  // namespace bench
