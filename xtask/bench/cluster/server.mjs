// One Socket.IO 4 node of `cargo xtask bench cluster`: node server.mjs PORT REDIS_URL
//
// WebSocket transport only (the load client speaks Engine.IO 4 over WebSocket, no polling).
// Every connection joins the default namespace; an event `pub` from any client is broadcast
// to every client of every node with `io.emit("m", data)` through @socket.io/redis-adapter,
// the same fan-out as `wskit serve`'s /chat over its Redis backplane. Prints `listening PORT`
// once the adapter's Redis clients are connected.
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [port, redisUrl] = process.argv.slice(2);
if (!port || !redisUrl) {
  console.error("usage: node server.mjs PORT REDIS_URL");
  process.exit(2);
}
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
pub.on("error", (e) => console.error("redis pub:", e.message));
sub.on("error", (e) => console.error("redis sub:", e.message));
await Promise.all([pub.connect(), sub.connect()]);

const io = new Server({ transports: ["websocket"], perMessageDeflate: false });
io.adapter(createAdapter(pub, sub));
io.on("connection", (socket) => {
  socket.on("pub", (data) => io.emit("m", data));
});
io.listen(Number(port));
console.log(`listening ${port}`);
