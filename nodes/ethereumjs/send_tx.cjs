#!/usr/bin/env node
// Send signed transfers to an execution client's JSON-RPC at a fixed rate, as a wallet would.
//
//   send_tx.cjs RPC_URL RATE_PER_S COUNT
//
// The sender's key is the devnet's funded account (SHA-256 of "thermocline devnet sender"; see
// genesis.json); each transfer sends 1 wei to an address of its own, an EIP-1559 transaction on
// chain 1337 signed with @ethereumjs/tx from the client's install beside this script. One JSON
// line per transfer.
const path = require('path');
const crypto = require('crypto');
const http = require('http');
const [url, rate, count] = process.argv.slice(2);
const mod = (name) => require(path.join(__dirname, 'node_modules', '@ethereumjs', name));
const { Common, Hardfork } = mod('common');
const { FeeMarketEIP1559Transaction } = mod('tx');
const { bytesToHex, hexToBytes } = mod('util');

const common = Common.custom({ chainId: 1337 }, { hardfork: Hardfork.Shanghai });
const key = crypto.createHash('sha256').update('thermocline devnet sender').digest();

function rpc(method, params) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(data));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  let nonce;
  for (;;) {
    try {
      const r = await rpc('eth_getTransactionCount', ['0xb5264a9d7df07e3321606204d2a4ff79f5b8de0d', 'latest']);
      nonce = BigInt(r.result);
      break;
    } catch (e) {
      await sleep(1000);
    }
  }
  const every = 1000 / Number(rate);
  for (let k = 0; k < Number(count); k++) {
    const to = bytesToHex(crypto.createHash('sha256').update(`recipient ${k}`).digest().subarray(0, 20));
    const tx = FeeMarketEIP1559Transaction.fromTxData(
      { chainId: 1337n, nonce, maxPriorityFeePerGas: 1000000000n, maxFeePerGas: 20000000000n, gasLimit: 21000n, to, value: 1n },
      { common },
    ).sign(key);
    let answer;
    try {
      answer = await rpc('eth_sendRawTransaction', [bytesToHex(tx.serialize())]);
    } catch (e) {
      answer = { error: String(e) };
    }
    console.log(JSON.stringify({ k, nonce: Number(nonce), hash: answer.result ?? null, error: answer.error ?? null }));
    if (answer.result) nonce += 1n;
    await sleep(every);
  }
}

main();
