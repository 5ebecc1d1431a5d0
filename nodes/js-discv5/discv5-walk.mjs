// An independent discv5 node (@chainsafe/discv5 3.0.0, the one Lodestar uses) that walks a DHT:
// it bootstraps from the records given, runs LOOKUPS random lookups one after another, prints one
// line per lookup and one per record it returned, then the size of its own table, and exits.
//   node discv5-walk.mjs IP PORT LOOKUPS ENR[,ENR...]
// Lines:
//   lookup k=K found=N ms=M
//   record k=K id=NODE_ID addr=IP:UDP
//   table size=S
import { Discv5, ENR, SignableENR } from "@chainsafe/discv5";
import { createSecp256k1PeerId } from "@libp2p/peer-id-factory";
import { multiaddr } from "@multiformats/multiaddr";

const [ip, port, lookups, bootnodes] = process.argv.slice(2);
const peerId = await createSecp256k1PeerId();
const enr = SignableENR.createFromPeerId(peerId);
enr.ip = ip;
enr.udp = Number(port);
const d = Discv5.create({ enr, peerId, multiaddr: multiaddr(`/ip4/0.0.0.0/udp/${port}`) });
await d.start();
for (const text of bootnodes.split(",")) d.addEnr(ENR.decodeTxt(text));
for (let k = 0; k < Number(lookups); k++) {
  const started = Date.now();
  try {
    const found = await d.findRandomNode();
    console.log(`lookup k=${k} found=${found.length} ms=${Date.now() - started}`);
    for (const r of found) console.log(`record k=${k} id=${r.nodeId} addr=${r.ip}:${r.udp}`);
  } catch (e) {
    console.log(`error k=${k} ${e?.message ?? e}`);
  }
}
console.log(`table size=${d.kadValues().length}`);
await d.stop();
process.exit(0);
