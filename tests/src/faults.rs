//! Disk faults for the real `baton-controller` binary, with no change to the
//! product: the `faultfs` LD_PRELOAD shim (`tests/faultfs/faultfs.c`) wraps
//! `fsync` / `fdatasync` / `sync_file_range` / `syncfs` and, for descriptors
//! under the controller's data directory only, passes them through, fails
//! them with EIO, or stalls them, as a control file says.
//!
//! The shim is compiled at test time with the system C compiler (`cc`) into
//! the test's temporary folder. A machine without `cc` fails the test with a
//! message saying so: a disk-fault test that silently skips proves nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shim's source, relative to this crate.
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/faultfs/faultfs.c");

/// Environment variable naming the control file. Its first segment after
/// `BATON_` (`FAULTFS_CONTROL`) is not a controller configuration key, so the
/// controller's strict `BATON_*` parse ignores it (`config.rs`, `controller_env`).
pub const CONTROL_ENV: &str = "BATON_FAULTFS_CONTROL";
/// Environment variable naming the path prefix whose descriptors are faulted.
pub const PREFIX_ENV: &str = "BATON_FAULTFS_PREFIX";
/// Every fault the shim injects is reported on the process's stderr with this prefix.
pub const REPORT_PREFIX: &str = "faultfs: ";

/// The compiled shim.
#[derive(Clone, Debug)]
pub struct FaultFs {
    lib: PathBuf,
}

impl FaultFs {
    /// Compiles the shim into `dir/libfaultfs.so`. Panics (failing the test)
    /// when `cc` is missing or the compile fails.
    pub fn build(dir: &Path) -> FaultFs {
        std::fs::create_dir_all(dir).expect("faultfs build folder");
        let lib = dir.join("libfaultfs.so");
        let output = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&lib)
            .arg(SOURCE)
            .arg("-ldl")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "the disk-fault tests need a C compiler to build the faultfs LD_PRELOAD shim: \
                     running `cc` failed ({e}); install one (e.g. `apt-get install gcc`)"
                )
            });
        assert!(
            output.status.success(),
            "compiling {SOURCE} with cc failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        FaultFs { lib }
    }

    pub fn lib(&self) -> &Path {
        &self.lib
    }

    /// The environment that loads the shim into a process: its syncs of files
    /// under `data_dir` obey `control`.
    pub fn env(&self, control: &DiskControl, data_dir: &Path) -> Vec<(String, String)> {
        // readlink(/proc/self/fd/N) gives canonical paths: canonicalise the
        // deepest existing ancestor (the data dir itself may not exist yet).
        let prefix = canonical_prefix(data_dir);
        vec![
            ("LD_PRELOAD".to_string(), self.lib.to_string_lossy().into_owned()),
            (CONTROL_ENV.to_string(), control.path.to_string_lossy().into_owned()),
            (PREFIX_ENV.to_string(), prefix),
        ]
    }
}

/// `dir` made canonical (through its deepest existing ancestor), with a
/// trailing `/` so `controller-1` does not also match `controller-10`.
fn canonical_prefix(dir: &Path) -> String {
    let mut existing = dir.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(ToOwned::to_owned), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut path = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        path.push(name);
    }
    let mut s = path.to_string_lossy().into_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// What a disk does, as written to a control file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskMode {
    Ok,
    /// Every sync fails with EIO (and syncs nothing).
    Fail,
    /// Every sync sleeps this many milliseconds first.
    Stall(u64),
}

/// One process's control file. The shim re-reads it at most every 10 ms.
#[derive(Debug)]
pub struct DiskControl {
    path: PathBuf,
}

impl DiskControl {
    /// Creates `path` saying `ok`.
    pub fn create(path: PathBuf) -> DiskControl {
        let control = DiskControl { path };
        control.set(DiskMode::Ok);
        control
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file atomically (write then rename, so the shim never
    /// reads half a line and always sees a new inode).
    pub fn set(&self, mode: DiskMode) {
        let text = match mode {
            DiskMode::Ok => "ok\n".to_string(),
            DiskMode::Fail => "fail\n".to_string(),
            DiskMode::Stall(ms) => format!("stall {ms}\n"),
        };
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("writing the faultfs control file");
        std::fs::rename(&tmp, &self.path).expect("replacing the faultfs control file");
    }
}

/// Flips every bit of the byte at `offset` of `file` (a corrupt disk block).
/// Returns the old byte.
pub fn flip_byte(file: &Path, offset: u64) -> u8 {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(file).expect("open file to corrupt");
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.read_exact(&mut b).expect("read byte");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&[!b[0]]).expect("write byte");
    f.sync_all().expect("sync corrupted file");
    b[0]
}
