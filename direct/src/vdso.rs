//! Neutralising a managed process's vDSO from the supervisor, for programs without the shim
//! (static binaries): at the first stop after an `execve`, each time function's entry in the
//! task's vDSO is overwritten (through `/proc/PID/mem`) with a stub that makes the real syscall,
//! which the supervisor answers from simulated time. The vDSO image is the same in every process
//! of the machine, so symbol offsets come from the supervisor's own copy. Programs that load the
//! shim overwrite these stubs again with jumps into the shim (no syscall at all).

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// Entry offsets (from the vDSO's start) and the stub to write at each.
struct Patches(Vec<(u64, Vec<u8>)>);

fn syscall_stub(nr: u32) -> Vec<u8> {
    // mov eax, nr; syscall; ret
    let mut s = vec![0xb8];
    s.extend_from_slice(&nr.to_le_bytes());
    s.extend_from_slice(&[0x0f, 0x05, 0xc3]);
    s
}

fn own_vdso() -> Option<&'static [u8]> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let (start, end) = vdso_range(&maps)?;
    // SAFETY: getauxval; the vDSO mapping is readable and lives as long as the process.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if base != start {
        return None;
    }
    // SAFETY: [start, end) is the mapped vDSO image.
    Some(unsafe { std::slice::from_raw_parts(start as *const u8, (end - start) as usize) })
}

/// `[vdso]` mapping range from a `/proc/PID/maps` text.
fn vdso_range(maps: &str) -> Option<(u64, u64)> {
    let line = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (range, _) = line.split_once(' ')?;
    let (a, b) = range.split_once('-')?;
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o.checked_add(8)?)?.try_into().ok()?))
}

/// `base + index × stride + field`, or `None` if it overflows (offsets come from the image).
fn offset(base: usize, index: usize, stride: usize, field: usize) -> Option<usize> {
    base.checked_add(index.checked_mul(stride)?)?.checked_add(field)
}

/// Defined function symbols of an ELF image (as mapped): name → (offset in the image, size).
/// Bounds-checked throughout: a malformed image gives `None`, never a panic.
pub fn functions(img: &[u8]) -> Option<Vec<(String, u64, u64)>> {
    if img.get(..4)? != b"\x7fELF" {
        return None;
    }
    let (phoff, shoff) = (u64_at(img, 32)? as usize, u64_at(img, 40)? as usize);
    let (phentsize, phnum) = (u16_at(img, 54)? as usize, u16_at(img, 56)? as usize);
    let (shentsize, shnum) = (u16_at(img, 58)? as usize, u16_at(img, 60)? as usize);
    // Bias: the first PT_LOAD maps file offset p_offset at p_vaddr.
    let mut bias = None;
    for i in 0..phnum {
        let p = offset(phoff, i, phentsize, 0)?;
        if u32_at(img, p)? == 1 {
            bias = Some(u64_at(img, p.checked_add(8)?)?.wrapping_sub(u64_at(img, p.checked_add(16)?)?));
            break;
        }
    }
    let bias = bias?;
    let mut out = Vec::new();
    for i in 0..shnum {
        let s = offset(shoff, i, shentsize, 0)?;
        let field = |f: usize| s.checked_add(f);
        if u32_at(img, field(4)?)? != 11 {
            continue; // SHT_DYNSYM
        }
        let (off, size, link, entsize) = (
            u64_at(img, field(24)?)? as usize,
            u64_at(img, field(32)?)? as usize,
            u32_at(img, field(40)?)? as usize,
            u64_at(img, field(56)?)? as usize,
        );
        if entsize != 24 || link >= shnum {
            return None;
        }
        let strtab = u64_at(img, offset(shoff, link, shentsize, 24)?)? as usize;
        for k in 0..size / 24 {
            let y = offset(off, k, 24, 0)?;
            let (name, info, shndx, value, sz) = (
                u32_at(img, y)? as usize,
                *img.get(y.checked_add(4)?)?,
                u16_at(img, y.checked_add(6)?)?,
                u64_at(img, y.checked_add(8)?)?,
                u64_at(img, y.checked_add(16)?)?,
            );
            if shndx == 0 || info & 0xf != 2 {
                continue;
            }
            let start = strtab.checked_add(name)?;
            let len = img.get(start..)?.iter().position(|&c| c == 0)?;
            let name = String::from_utf8_lossy(&img[start..start + len]).into_owned();
            out.push((name, value.wrapping_add(bias), sz));
        }
    }
    Some(out)
}

fn patches() -> &'static Option<Patches> {
    static P: OnceLock<Option<Patches>> = OnceLock::new();
    P.get_or_init(|| {
        let img = own_vdso()?;
        let funcs = functions(img)?;
        let stubs: [(&str, Vec<u8>); 6] = [
            ("__vdso_clock_gettime", syscall_stub(libc::SYS_clock_gettime as u32)),
            ("__vdso_gettimeofday", syscall_stub(libc::SYS_gettimeofday as u32)),
            ("__vdso_time", syscall_stub(libc::SYS_time as u32)),
            ("__vdso_clock_getres", syscall_stub(libc::SYS_clock_getres as u32)),
            ("__vdso_getcpu", syscall_stub(libc::SYS_getcpu as u32)),
            // mov eax, -ENOSYS; ret: "no vDSO getrandom", so libc uses the (emulated) syscall.
            ("__vdso_getrandom", vec![0xb8, 0xda, 0xff, 0xff, 0xff, 0xc3]),
        ];
        let mut v = Vec::new();
        for (name, stub) in stubs {
            if let Some((_, off, size)) = funcs.iter().find(|(n, _, _)| n == name)
                && *size as usize >= stub.len()
            {
                v.push((*off, stub));
            }
        }
        Some(Patches(v))
    })
}

/// Write the syscall stubs into task `pid`'s vDSO. Returns how many entries were patched.
pub fn neutralise(pid: i32) -> io::Result<usize> {
    let Some(p) = patches() else { return Ok(0) };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let Some((start, _)) = vdso_range(&maps) else { return Ok(0) };
    let mem = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/mem"))?;
    for (off, stub) in &p.0 {
        mem.write_all_at(stub, start + off)?;
    }
    Ok(p.0.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_vdso_has_the_time_functions() {
        let funcs = functions(own_vdso().expect("a vDSO")).expect("parses");
        for name in ["__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time"] {
            assert!(funcs.iter().any(|(n, _, s)| n == name && *s >= 8), "{name} in {funcs:?}");
        }
        assert!(patches().as_ref().is_some_and(|p| p.0.len() >= 3));
    }

    #[test]
    fn malformed_images_are_refused_without_panicking() {
        let img = own_vdso().unwrap();
        for cut in [0, 3, 64, 200, img.len() / 2] {
            let _ = functions(&img[..cut]);
        }
        let mut bad = img.to_vec();
        for b in bad.iter_mut().skip(16).take(48) {
            *b = 0xff;
        }
        assert!(functions(&bad).is_none());
        // Offsets near the top of the address space (found by fuzzing): no overflow.
        for field in [32..40, 40..48] {
            let mut far = img.to_vec();
            far[field].fill(0xff);
            assert!(functions(&far).is_none());
        }
        assert_eq!(offset(usize::MAX, 1, 1, 0), None);
        assert_eq!(offset(8, 2, 24, 4), Some(60));
    }
}
