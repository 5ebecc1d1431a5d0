//! End-to-end, an execution client under the direct engine: `@ethereumjs/client` 0.8.1
//! (`nodes/ethereumjs`, from npm, unmodified) on one simulated host with a post-merge genesis
//! (terminal total difficulty 0, Shanghai at genesis), its Engine API behind a JWT secret, driven
//! from another host by `nodes/ethereumjs/engine_client.py` as a consensus client would drive it:
//! the Capella methods Lodestar 1.5.1 calls are offered, an unauthenticated call is refused, and
//! one block with a withdrawal is built, imported and made the head; the same on 1 and 2 shards.

mod common;

use common::npm::npm_install;
use common::*;

/// The execution client's launch line: `node` and its CLI with the genesis, the data directory,
/// JSON-RPC on 8545, the Engine API on 8551 with the JWT secret, devp2p discovery off.
fn el_process(dir: &std::path::Path, cli: &std::path::Path) -> String {
    let g = dir.join("genesis.json");
    let jwt = dir.join("jwt.hex");
    format!(
        "\n[[processes]]\nhost = \"el\"\npath = \"/usr/bin/node\"\nargs = [\"{}\", \"--gethGenesis\", \"{}\", \
         \"--dataDir\", \"{{datadir}}\", \"--rpc\", \"--rpcAddr\", \"0.0.0.0\", \"--rpcPort\", \"8545\", \"--rpcEngine\", \
         \"--rpcEngineAddr\", \"0.0.0.0\", \"--rpcEnginePort\", \"8551\", \"--jwtSecret\", \"{}\", \"--isSingleNode\", \
         \"--logFile\", \"false\", \"--port\", \"30303\", \"--discDns\", \"false\", \"--discV4\", \"false\"]\n\
         expected_exit = \"running\"\n",
        cli.display(),
        g.display(),
        jwt.display()
    )
}

#[test]
fn ethereumjs_serves_the_engine_api_and_builds_a_capella_block_under_the_shim() {
    let installed = npm_install("ethereumjs", "ethereumjs-client-0.8.1", &["engine_client.py", "genesis.json"]);
    let cli = installed.join("node_modules/@ethereumjs/client/dist/bin/cli.js");
    let dir = scratch("direct-ethereumjs");
    std::fs::copy(installed.join("genesis.json"), dir.join("genesis.json")).unwrap();
    std::fs::write(dir.join("jwt.hex"), "0x".to_string() + &"5a".repeat(32)).unwrap();
    let client = installed.join("engine_client.py").display().to_string();
    let jwt = dir.join("jwt.hex").display().to_string();
    let spec = SpecBuilder::switch(1, "40 s", "5 ms")
        .direct("el", "1 Gbit", "")
        .direct("cl", "1 Gbit", "")
        .processes_toml(&el_process(&dir, &cli))
        .process("cl", "/usr/bin/python3", &[&client, "el", "8551", "8545", &jwt], "20 s", "")
        .write(&dir, "el.toml");
    let digests = digests_by_run(&dir, &spec, &[("one", &[]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"]);
    let out = read(dir.join("one/hosts/cl/python3.0.stdout"));
    assert_eq!(out, read(dir.join("two/hosts/cl/python3.0.stdout")));
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let caps: Vec<&str> = lines[0]["capabilities"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for m in [
        "engine_newPayloadV2",
        "engine_forkchoiceUpdatedV2",
        "engine_getPayloadV2",
        "engine_exchangeTransitionConfigurationV1",
    ] {
        assert!(caps.contains(&m), "{m} offered: {caps:?}");
    }
    assert_eq!(lines[1]["unauthenticated"], 401, "{out}");
    assert_eq!(
        (lines[2]["forkchoice"].as_str(), lines[2]["payload_id"].as_bool()),
        (Some("VALID"), Some(true)),
        "{out}"
    );
    assert_eq!(lines[3]["built"], 1, "{out}");
    assert_eq!(lines[3]["withdrawals"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(lines[4]["new_payload"], "VALID", "{out}");
    assert_eq!(lines[5]["head"], "VALID", "{out}");
    // The head is block 1, and the withdrawal (10⁹ gwei) credited 1 ETH.
    assert_eq!(lines[6]["number"], 1, "{out}");
    assert_eq!(lines[6]["balance"].as_u64(), Some(1_000_000_000_000_000_000), "{out}");
}
