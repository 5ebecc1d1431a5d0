// js-gossip-node: a plain js-libp2p gossipsub node with the command line, log lines, block
// format and node keys of the Rust `nodes/gossip-node`, so either can stand in for the other.
//
// TCP, Noise and yamux (or mplex, `--muxer mplex`), identify and ping, gossipsub with the Ethereum
// consensus parameters (D = 8 within 6–12, heartbeat 0.7 s, message cache 6/3, signed messages,
// strict validation). Nothing in it knows about a simulator.
//
// Node `i` of `n` listens on `--listen`, dials every `--peer` (host:port, resolved with the
// system resolver), subscribes to `beacon_block`, and from `--genesis` on, in each `--slot` of
// `--slots`, the node with index `slot mod n` publishes one block of `--size` bytes. It prints
//
//   connected node=<index or -1> dialer=<true|false>      (with --verbose)
//   publish slot=S peers=P
//   recv slot=S publisher=P via=<index or -1> delay_us=D  (once per slot and publisher)
//   score peer=<index or -1> value=X                      (each connected peer, at the end)
//   rtt peer=<index or -1> ms=X          (each connection: the last ping, every 10 s, or undefined)
//   done node=i received=R expected=E
//
// and `dial failed: …`, `disconnected node=…` or `error: …` when things go wrong. It writes
// `stopping` to standard error before it shuts down, so js-libp2p's own error log (with
// DEBUG=libp2p:*:error) can be told apart from the noise of closing connections.

import './node20.mjs'
import { lookup } from 'node:dns/promises'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { identify } from '@libp2p/identify'
import { mplex } from '@libp2p/mplex'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const TOPIC = 'beacon_block'
/** Bytes of a block before its filler: slot, publisher, publication time. */
const HEADER = 8 + 4 + 8
const MASK64 = (1n << 64n) - 1n

/** The command line, with the Rust node's names and defaults. */
function args () {
  const { values } = parseArgs({
    options: {
      index: { type: 'string' },
      nodes: { type: 'string' },
      listen: { type: 'string', default: '0.0.0.0:9000' },
      peer: { type: 'string', multiple: true, default: [] },
      genesis: { type: 'string', default: '12' },
      slot: { type: 'string', default: '12' },
      slots: { type: 'string', default: '3' },
      size: { type: 'string', default: String(100 * 1024) },
      verbose: { type: 'boolean', default: false },
      muxer: { type: 'string', default: 'yamux' }
    }
  })
  const int = (name) => {
    const v = Number(values[name])
    if (values[name] === undefined || !Number.isInteger(v) || v < 0) throw new Error(`--${name} needs a whole number`)
    return v
  }
  const a = {
    index: int('index'),
    nodes: int('nodes'),
    listen: splitHostPort(values.listen),
    peers: values.peer.flatMap((p) => p.split(',')).filter((p) => p !== ''),
    genesis: int('genesis'),
    slot: int('slot'),
    slots: int('slots'),
    size: int('size'),
    verbose: values.verbose,
    muxer: values.muxer
  }
  if (a.nodes === 0 || a.index >= a.nodes) throw new Error('--index must be below --nodes')
  if (!['yamux', 'mplex'].includes(a.muxer)) throw new Error('--muxer is yamux or mplex')
  return a
}

/** `host:port` as [host, port]. */
function splitHostPort (s) {
  const at = s.lastIndexOf(':')
  const port = Number(s.slice(at + 1))
  if (at <= 0 || !Number.isInteger(port)) throw new Error(`${s} is not host:port`)
  return [s.slice(0, at), port]
}

/** The key of node `index`, as the Rust node derives it: the ed25519 secret (seed) is the index
 * (big-endian u32), then "gossipnd", then zeros. */
async function keyOf (index) {
  const seed = new Uint8Array(32)
  new DataView(seed.buffer).setUint32(0, index)
  seed.set(new TextEncoder().encode('gossipnd'), 4)
  return generateKeyPairFromSeed('Ed25519', seed)
}

/** Unix time in ns (the wall clock with the monotonic clock's resolution). */
function unixNs () {
  return BigInt(Math.round(performance.timeOrigin * 1000)) * 1000n + BigInt(Math.round(performance.now() * 1e6))
}

/** A block: header, then filler that depends on the slot (the Rust node's xorshift). */
function block (slot, publisher, size) {
  const data = new Uint8Array(Math.max(size, HEADER))
  const view = new DataView(data.buffer)
  view.setBigUint64(0, BigInt(slot))
  view.setUint32(8, publisher)
  view.setBigUint64(12, unixNs())
  let x = ((BigInt(slot) * 0x9E3779B97F4A7C15n) & MASK64) | 1n
  for (let i = HEADER; i < size; i++) {
    x ^= (x << 13n) & MASK64
    x ^= x >> 7n
    x ^= (x << 17n) & MASK64
    data[i] = Number(x & 0xFFn)
  }
  return data
}

/** [slot, publisher, publication time] of a received block, or null. */
function parseBlock (data) {
  if (data.length < HEADER) return null
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  return [view.getBigUint64(0), view.getUint32(8), view.getBigUint64(12)]
}

/** rust-libp2p's default message id (the surrogates' too): the base58btc text of the publisher's
 * peer id, then the sequence number in decimal, as UTF-8. Every peer of a topic must use the same
 * function for IHAVE, IWANT and IDONTWANT to name the same messages; js-libp2p's own default
 * (key protobuf and sequence number bytes) names them differently. */
function msgIdFn (msg) {
  return new TextEncoder().encode(`${msg.from.toString()}${msg.sequenceNumber}`)
}

/** Gossipsub with the Ethereum consensus p2p parameters. */
function gossipConfig (size) {
  return {
    D: 8,
    Dlo: 6,
    Dhi: 12,
    Dlazy: 6,
    heartbeatInterval: 700,
    mcacheLength: 6,
    mcacheGossip: 3,
    fanoutTTL: 60_000,
    globalSignaturePolicy: 'StrictSign',
    msgIdFn,
    maxInboundDataLength: Math.max(size + 4096, 1 << 20),
    allowPublishToZeroTopicPeers: true,
    fallbackToFloodsub: false
  }
}

/** The node: TCP, Noise, the chosen muxer, identify, ping, gossipsub. */
async function createNode (a, privateKey) {
  return createLibp2p({
    privateKey,
    addresses: { listen: [`/ip4/${a.listen[0]}/tcp/${a.listen[1]}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [a.muxer === 'mplex' ? mplex() : yamux()],
    connectionManager: { maxConnections: 1000 },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub(gossipConfig(a.size))
    }
  })
}

/** Resolves `host:port` (system resolver) and dials it, logging a failure. */
async function dial (node, peer) {
  try {
    const [host, port] = splitHostPort(peer)
    const { address } = await lookup(host, { family: 4 })
    await node.dial(multiaddr(`/ip4/${address}/tcp/${port}`))
  } catch (e) {
    console.log(`dial failed: ${peer}: ${e.message ?? e}`)
  }
}

/** Logs connections, disconnections and received blocks; returns the set of received blocks. */
function watch (node, a, indexOf) {
  const received = new Set()
  node.addEventListener('connection:open', ({ detail: c }) => {
    if (a.verbose) console.log(`connected node=${indexOf(c.remotePeer)} dialer=${c.direction === 'outbound'}`)
  })
  node.addEventListener('connection:close', ({ detail: c }) => {
    if (!stopping) console.log(`disconnected node=${indexOf(c.remotePeer)}`)
  })
  node.services.pubsub.addEventListener('gossipsub:message', ({ detail }) => {
    const got = parseBlock(detail.msg.data)
    if (got === null) {
      console.log(`recv malformed block of ${detail.msg.data.length} bytes`)
      return
    }
    const [slot, publisher, sent] = got
    const key = `${slot}/${publisher}`
    if (received.has(key)) return
    received.add(key)
    const delay = unixNs() - sent
    const delayUs = delay > 0n ? delay / 1000n : 0n
    console.log(`recv slot=${slot} publisher=${publisher} via=${indexOf(detail.propagationSource)} delay_us=${delayUs}`)
  })
  return received
}

let stopping = false

/** Publishes this node's blocks on the slot schedule; resolves after the last slot. */
async function runSlots (node, a, started) {
  for (let s = 0; s <= a.slots; s++) {
    const due = started + (a.genesis + s * a.slot) * 1000
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())))
    if (s === a.slots) return
    if (s % a.nodes !== a.index) continue
    try {
      await node.services.pubsub.publish(TOPIC, block(s, a.index, a.size))
      console.log(`publish slot=${s} peers=${node.getPeers().length}`)
    } catch (e) {
      console.log(`publish slot=${s} failed: ${e.message ?? e}`)
    }
  }
}

async function main () {
  const a = args()
  const started = performance.now()
  const peers = await Promise.all([...Array(a.nodes).keys()].map(async (i) => peerIdFromPrivateKey(await keyOf(i)).toString()))
  const indexOf = (p) => peers.indexOf(p.toString())
  const node = await createNode(a, await keyOf(a.index))
  const received = watch(node, a, indexOf)
  node.services.pubsub.subscribe(TOPIC)
  await Promise.all(a.peers.map((p) => dial(node, p)))
  await runSlots(node, a, started)
  for (const p of node.getPeers()) {
    console.log(`score peer=${indexOf(p)} value=${node.services.pubsub.getScore(p.toString())}`)
  }
  for (const c of node.getConnections()) {
    console.log(`rtt peer=${indexOf(c.remotePeer)} ms=${c.rtt}`)
  }
  const scheduled = [...received].filter((k) => {
    const [s, p] = k.split('/').map(BigInt)
    return s % BigInt(a.nodes) === p
  }).length
  const expected = [...Array(a.slots).keys()].filter((s) => s % a.nodes !== a.index).length
  console.log(`done node=${a.index} received=${scheduled} expected=${expected}`)
  stopping = true
  console.error('stopping')
  await node.stop()
  process.exit(0)
}

main().catch((e) => {
  console.log(`error: ${e.stack ?? e}`)
  process.exit(1)
})
