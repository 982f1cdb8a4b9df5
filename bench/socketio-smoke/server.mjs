// The chat protocol of the peer harness's Socket.IO server (/work/shared/peers/peers/socketio/
// server.js) without its SQLite table: HMAC token in the CONNECT auth, a personal room per user,
// "join" (ack {ok}), "dm" {to, body} and "room" {room, body} (ack {id}, "msg" to the recipients).
// bench/socketio-smoke.sh runs chat-bench --proto socketio against it. Env: PORT, CHAT_SECRET.
import http from 'node:http';
import crypto from 'node:crypto';
import { Server } from 'socket.io';

const PORT = +(process.env.PORT || 3000);
const SECRET = process.env.CHAT_SECRET || 'bench-secret';
const tokenFor = (user) =>
  `${user}.${crypto.createHmac('sha256', SECRET).update(String(user)).digest('hex').slice(0, 32)}`;

const httpServer = http.createServer((req, res) => { res.statusCode = 404; res.end(); });
const io = new Server(httpServer, { serveClient: false, transports: ['websocket'], maxHttpBufferSize: 1e5 });
let nextId = 0;

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  const user = typeof token === 'string' ? token.slice(0, token.indexOf('.')) : '';
  if (!user || token !== tokenFor(user)) return next(new Error('unauthorized'));
  socket.data.user = user;
  next();
});

io.on('connection', (socket) => {
  const user = socket.data.user;
  socket.join(`u:${user}`);
  socket.on('join', (room, ack) => {
    if (typeof room !== 'string' || room.length > 64) return ack?.({ error: 'bad room' });
    socket.join(`r:${room}`);
    ack?.({ ok: true });
  });
  socket.on('dm', (m, ack) => {
    if (!m || typeof m.body !== 'string' || m.to == null) return ack?.({ error: 'bad message' });
    const id = ++nextId;
    io.to(`u:${m.to}`).emit('msg', { id, from: user, ts: Date.now(), body: m.body });
    ack?.({ id });
  });
  socket.on('room', (m, ack) => {
    if (!m || typeof m.body !== 'string' || typeof m.room !== 'string') return ack?.({ error: 'bad message' });
    if (!socket.rooms.has(`r:${m.room}`)) return ack?.({ error: 'not a member' });
    const id = ++nextId;
    socket.to(`r:${m.room}`).emit('msg', { id, from: user, room: m.room, ts: Date.now(), body: m.body });
    ack?.({ id });
  });
});

httpServer.listen(PORT, '127.0.0.1', () => console.log(`socket.io smoke server on 127.0.0.1:${PORT}`));
process.on('SIGTERM', () => { io.close(); process.exit(0); });
