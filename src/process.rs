//! What `/proc` says about a process (its parent, group, session, start time, environment) and the few
//! process-wide calls hale makes on Linux: becoming a child subreaper, reaping orphans, signalling a
//! process only while it is still the one that was looked at (a pidfd), giving the allocator's free
//! memory back to the system and limiting its arenas. Depends on nothing in hale, so the store and the supervisor can both use it.

// Unsafe code here: libc calls: sysconf, pidfd_open, kill, prctl, waitpid, malloc_trim, mallopt; each block says why
// it is sound.
#![allow(unsafe_code)]

use std::io::Read;

/// One line of `/proc/<pid>/stat`, the fields hale uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The state letter: `R`, `S`, `Z` (a zombie), ...
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// The start time in clock ticks since boot (field 22): with the pid, it names one process.
    pub start_ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. The second field (the command name, in parentheses) may hold spaces
/// and parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    let (head, rest) = stat.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    // `rest` starts at field 3 (the state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
    let small = |i: usize| -> Option<u32> { u32::try_from(number(i)?).ok() };
    Some(ProcStat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: small(1)?,
        pgid: small(2)?,
        sid: small(3)?,
        start_ticks: number(19)?,
    })
}

/// Field 22 of a `/proc/<pid>/stat` line: the start time in clock ticks since boot.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    parse_stat(stat).map(|s| s.start_ticks)
}

/// The stat of process `pid`; None when it is gone or on systems without `/proc`.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of process `pid` in clock ticks since boot; None when it is gone.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_ticks)
}

/// Every process this one can see, as they are now.
pub fn all() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let pid: u32 = name.to_str()?.parse().ok()?;
            stat(pid)
        })
        .collect()
}

/// True when the environment process `pid` started with holds `name=value`. False when it does not, or
/// cannot be read (another user's process, a zombie, a process gone).
pub fn environ_has(pid: u32, name: &str, value: &str) -> bool {
    let Ok(mut file) = std::fs::File::open(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return false;
    }
    let wanted = format!("{name}={value}");
    bytes
        .split(|&b| b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// The program name the kernel keeps for `pid` (`/proc/<pid>/comm`, at most 15 bytes).
pub fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

/// When the system booted, in seconds since the epoch (`btime` of `/proc/stat`).
pub fn boot_time_s() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Clock ticks per second, the unit of start times.
pub fn ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads its argument.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// When process `pid` started, in milliseconds since the epoch (to the tick); None when it is gone.
pub fn started_at_ms(pid: u32) -> Option<i64> {
    let ticks = start_ticks(pid)?;
    let boot = boot_time_s()?;
    let ms = ticks.saturating_mul(1000) / ticks_per_s();
    Some(boot.saturating_mul(1000) + i64::try_from(ms).ok()?)
}

/// Sends `signal` to process `pid` only if it is still the process that started at `start_ticks`: the pid
/// is pinned with a pidfd first, so a pid reused in between is never signalled. Returns true when sent.
#[cfg(target_os = "linux")]
pub fn signal_if_same(pid: u32, start_ticks: u64, signal: libc::c_int) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
    if fd < 0 {
        // No pidfds (a kernel before 5.3): check and signal as close together as possible.
        if self::start_ticks(pid) != Some(start_ticks) {
            return false;
        }
        // SAFETY: kill has no memory-safety preconditions.
        return unsafe { libc::kill(raw, signal) } == 0;
    }
    // The descriptor now names this process for good; check it is the one meant, then signal through it.
    let fd = fd as libc::c_int;
    let sent = self::start_ticks(pid) == Some(start_ticks)
        // SAFETY: pidfd_send_signal reads only its arguments (a null siginfo is allowed).
        && unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } == 0;
    // SAFETY: `fd` was returned by pidfd_open above and is closed once.
    unsafe {
        libc::close(fd);
    }
    sent
}

#[cfg(not(target_os = "linux"))]
pub fn signal_if_same(_pid: u32, _start_ticks: u64, _signal: libc::c_int) -> bool {
    false
}

/// Makes this process a child subreaper: a process it started (or one of theirs) whose parent dies is
/// reparented to this process instead of init, so it can still be found, stopped and reaped.
/// Gives the memory the C allocator holds free back to the system (glibc's `malloc_trim(0)`), for after a
/// burst of short-lived allocations: glibc keeps freed memory in each thread's arena, and returns on its
/// own only what is free at the top of the main one. True when some was released; false (nothing done)
/// off glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointer: it walks the allocator's own free lists under the allocator's
    // locks and releases whole free pages, whatever other threads allocate meanwhile.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

/// The malloc arenas glibc may create (`limit_allocator_arenas`). glibc's own limit is 8 per core: a thread
/// that finds every arena busy makes another, and each keeps its freed memory to itself. hale's threads (the
/// runtime's workers, SQLite's, the blocking pool's) then spread the same memory over up to 16 arenas on
/// 2 cores; 2 held 8 MB less at 10,000 targets, with the same CPU.
pub const ALLOCATOR_ARENAS: i32 = 2;

/// Limits glibc's malloc arenas to `ALLOCATOR_ARENAS`, unless `MALLOC_ARENA_MAX` is set (the operator's
/// choice, which glibc has read already). Call it before any other thread starts: glibc fixes its limit
/// when a second thread first needs an arena. True when the limit was set; false (nothing done) when the
/// variable is set, and off glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_allocator_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    // SAFETY: mallopt takes two integers and sets an allocator parameter under the allocator's own lock.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, ALLOCATOR_ARENAS) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_allocator_arenas() -> bool {
    false
}

#[cfg(target_os = "linux")]
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER reads only its integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn become_subreaper() -> std::io::Result<()> {
    Ok(())
}

/// The processes reparented to this one: the kernel hands an orphan to the first live thread of its
/// subreaper, which is the main thread. hale itself never starts a process from its main thread (children
/// are forked by the spawner thread, heal commands by runtime workers), so every child of the main thread
/// is an orphan that nobody else waits for.
pub fn adopted_children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Reaps the adopted children that have exited (zombies); returns how many.
pub fn reap_adopted() -> usize {
    let mut reaped = 0;
    for pid in adopted_children() {
        if stat(pid).is_some_and(|s| s.state == 'Z') {
            let Ok(raw) = libc::pid_t::try_from(pid) else {
                continue;
            };
            let mut status = 0;
            // SAFETY: waitpid writes the status into the local; WNOHANG never blocks.
            if unsafe { libc::waitpid(raw, &mut status, libc::WNOHANG) } == raw {
                reaped += 1;
            }
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_even_when_the_name_holds_spaces_and_parentheses() {
        let line = "4242 (a (weird) name) S 1 4240 4239 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                state: 'S',
                ppid: 1,
                pgid: 4240,
                sid: 4239,
                start_ticks: 987_654
            })
        );
        assert_eq!(parse_start_ticks(line), Some(987_654));
        assert_eq!(parse_start_ticks("4242 (short) S 1 2"), None);
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let me = stat(std::process::id()).expect("our own stat");
        assert_eq!(me.pid, std::process::id());
        assert!(started_at_ms(me.pid).is_some());
        assert!(all().iter().any(|p| p.pid == me.pid));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_signal_reaches_a_process_only_with_its_own_start_time() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let ticks = start_ticks(child.id()).unwrap();
        assert!(!signal_if_same(child.id(), ticks + 1, libc::SIGKILL));
        assert!(child.try_wait().unwrap().is_none());
        assert!(signal_if_same(child.id(), ticks, libc::SIGKILL));
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
}
