// Promise.withResolvers (ES2024) arrived in Node 22; some of libp2p's small helper packages
// (it-queue, through mortice and the peer store) call it. This defines it, as specified, where the
// runtime lacks it, so the node runs on Node 20 too. Imported before anything else.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
