// An independent discv5 node (@chainsafe/discv5) that talks to one peer given by its ENR text:
// PING, TALKREQ, then a lookup; it prints what it got, one line each,
// and exits.
//   node discv5-probe.mjs PORT ENR
import { Discv5, ENR, SignableENR } from "@chainsafe/discv5";
import { createSecp256k1PeerId } from "@libp2p/peer-id-factory";
import { multiaddr } from "@multiformats/multiaddr";

const [port, peerText] = [Number(process.argv[2]), process.argv[3]];
const peerId = await createSecp256k1PeerId();
const enr = SignableENR.createFromPeerId(peerId);
enr.ip = "127.0.0.1";
enr.udp = port;
const d = Discv5.create({ enr, peerId, multiaddr: multiaddr(`/ip4/127.0.0.1/udp/${port}`) });
const discovered = new Set();
d.on("discovered", (e) => discovered.add(e.nodeId));
await d.start();
const peer = ENR.decodeTxt(peerText);
d.addEnr(peer);
try {
  // 3.0.0 never resolves sendPing's promise (its PONG handler calls no callback; nor does its NODES
  // handler for sendFindNode): the PING opens the session, and the node counts the peer as
  // connected once the handshake is done. Records arrive through the lookup's "discovered".
  d.sendPing(peer).catch(() => {});
  for (let i = 0; i < 50 && d.connectedPeerCount === 0; i++) await new Promise((r) => setTimeout(r, 100));
  console.log(`connected ${d.connectedPeerCount}`);
  const resp = await d.sendTalkReq(peer, Buffer.from([1, 2]), "thermocline");
  console.log(`talkresp bytes=${resp.length}`);
  await d.findRandomNode();
  console.log(`discovered ${[...discovered].sort().join(",")}`);
} catch (e) {
  console.log(`error ${e?.message ?? e}`);
}
await d.stop();
process.exit(0);
