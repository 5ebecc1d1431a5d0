//! Node.js programs installed from a lockfile under `nodes/`: `npm ci` once per target folder,
//! again only when the lockfile changes, so a CI run pays for the download once.

use super::exe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Tests of one binary install one at a time.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Installs `nodes/<src>` (its `package.json` and `package-lock.json`, with `npm ci`) into
/// `target/<dest>/`, copies `scripts` beside it (every time: they are the project's own and
/// cheap), and returns that folder. `npm ci` runs only when the folder has no installed copy of
/// the same lockfile.
pub fn npm_install(src: &str, dest: &str, scripts: &[&str]) -> PathBuf {
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let target = Path::new(exe()).parent().and_then(Path::parent).expect("target folder");
    let dir = target.join(dest);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nodes").join(src);
    let lock = std::fs::read(src.join("package-lock.json")).expect("a package-lock.json");
    let installed = dir.join("node_modules/.installed-lock.json");
    if std::fs::read(&installed).ok().as_deref() != Some(&lock[..]) {
        if Command::new("npm").arg("--version").output().is_err() {
            panic!("this test needs Node.js and npm (apt-get install nodejs npm)");
        }
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        let out =
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).output().expect("run npm ci");
        assert!(out.status.success(), "npm ci in {} failed:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
        std::fs::write(&installed, &lock).unwrap();
    }
    for f in scripts {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir
}

/// `nodes/js-gossip-node` installed (see [`npm_install`]): the path of its `gossip-node.mjs`.
pub fn js_gossip_node() -> PathBuf {
    npm_install("js-gossip-node", "js-gossip-node-2.9.0", &["gossip-node.mjs", "node20.mjs"]).join("gossip-node.mjs")
}

/// `nodes/js-discv5` installed (see [`npm_install`]): the path of its `discv5-probe.mjs`.
pub fn js_discv5_probe() -> PathBuf {
    js_discv5().join("discv5-probe.mjs")
}

/// `nodes/js-discv5` installed: the path of its `discv5-walk.mjs`.
pub fn js_discv5_walk() -> PathBuf {
    js_discv5().join("discv5-walk.mjs")
}

fn js_discv5() -> PathBuf {
    npm_install("js-discv5", "js-discv5-3.0.0", &["discv5-probe.mjs", "discv5-walk.mjs"])
}

/// Lodestar 1.5.1 installed by `nodes/lodestar/install.sh` into this target folder (once; the
/// script holds a lock, so concurrent tests wait for one install): its launcher `lodestar`, the
/// `path` experiment specs give it.
pub fn lodestar_launcher() -> PathBuf {
    let target = Path::new(exe()).parent().and_then(Path::parent).expect("target folder");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nodes/lodestar/install.sh");
    let out = Command::new("bash").arg(&script).arg(target).output().expect("run nodes/lodestar/install.sh");
    assert!(out.status.success(), "installing Lodestar 1.5.1 failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

/// Lodestar's entry script (see [`lodestar_launcher`]), for `node` itself to run.
pub fn lodestar_entry() -> PathBuf {
    lodestar_launcher().with_file_name("node_modules/@chainsafe/lodestar/lib/index.js")
}
