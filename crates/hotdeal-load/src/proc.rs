//! CPU cost of the server (and of the generator) from Linux's `/proc`.
//!
//! `/proc/PID/stat` gives user + system CPU time in clock ticks; sampled
//! before and after the measured phase it yields the server's CPU % of one
//! core and the CPU-milliseconds it spent per successful request — the
//! figure that tells whether a gain came from doing less work or from
//! using more cores. The server is found by `--server-pid`, or else as the
//! process owning the socket that listens on the target port: its inode is
//! in `/proc/net/tcp{,6}`, and `/proc/*/fd/*` links to `socket:[INODE]`.
//!
//! Ticks are `USER_HZ`, which the kernel fixes at 100 for user space on
//! every mainstream architecture (`sysconf(_SC_CLK_TCK)` without libc).

use std::fs;
use std::io;
use std::path::Path;

pub const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of a process, in ticks.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may itself contain
    // spaces or ')', so split after the *last* ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14, 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn read_ticks(pid: u32) -> io::Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&s)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
}

pub fn self_ticks() -> io::Result<u64> {
    let s = fs::read_to_string("/proc/self/stat")?;
    parse_stat_ticks(&s)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
}

/// Socket inodes listening on `port` in a `/proc/net/tcp`-format table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let st = f.get(3)?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            let p = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            (p == port && *st == "0A" && inode != 0).then_some(inode)
        })
        .collect()
}

/// The process (other than this one) holding a socket that listens on
/// `port`, if `/proc` lets us see it.
pub fn find_listener(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&t, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if owns_any(&entry.path().join("fd"), &wanted) {
            return Some(pid);
        }
    }
    None
}

fn owns_any(fd_dir: &Path, wanted: &[String]) -> bool {
    let Ok(fds) = fs::read_dir(fd_dir) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .ok()
            .and_then(|l| l.to_str().map(|s| wanted.iter().any(|w| w == s)))
            .unwrap_or(false)
    })
}

/// This process's soft limit on open files (one socket per VU).
pub fn open_files_limit() -> Option<u64> {
    parse_open_files(&fs::read_to_string("/proc/self/limits").ok()?)
}

pub fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The command name of a process, for the report.
pub fn process_name(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Cores and memory of this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cores: usize,
    pub ram_mb: u64,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
}

pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let cores = if cores > 0 {
        cores
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let ram_mb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_mem_total_kb(&m))
        .unwrap_or(0)
        / 1024;
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    Machine {
        cores,
        ram_mb,
        cpu_model,
        kernel,
    }
}

pub fn parse_mem_total_kb(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU used by a process over the measured phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuUse {
    pub pid: u32,
    pub process: Option<String>,
    /// CPU time in ms.
    pub cpu_ms: f64,
    /// Percent of one core over the wall time.
    pub percent_of_one_core: f64,
}

impl CpuUse {
    pub fn from_ticks(pid: u32, before: u64, after: u64, wall_secs: f64) -> Self {
        let cpu_s = after.saturating_sub(before) as f64 / TICKS_PER_SEC;
        Self {
            pid,
            process: process_name(pid),
            cpu_ms: cpu_s * 1000.0,
            percent_of_one_core: if wall_secs > 0.0 {
                cpu_s / wall_secs * 100.0
            } else {
                0.0
            },
        }
    }

    /// CPU-ms per request, given a count.
    pub fn ms_per(&self, n: u64) -> Option<f64> {
        (n > 0).then(|| self.cpu_ms / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_awkward_name() {
        // comm with a space and a parenthesis; utime=1234, stime=56
        let stat = "4242 (hot deal) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 56 0 0 20 0 9 0 123456 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(1290));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
        // our own process is readable
        assert!(self_ticks().is_ok());
    }

    #[test]
    fn listening_sockets_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98765 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4E20 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 11111 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22222 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_inodes(table, 20000), vec![98765]);
        assert_eq!(listening_inodes(table, 8080), vec![22222]);
        assert!(listening_inodes(table, 9999).is_empty());
    }

    #[test]
    fn finds_the_listener_of_a_port() {
        // A listener in this process is skipped (we never measure ourselves),
        // so only check the parsing path runs without error.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(find_listener(port), None);
    }

    #[test]
    fn cpu_arithmetic_and_machine() {
        let c = CpuUse::from_ticks(1, 100, 250, 3.0);
        assert!((c.cpu_ms - 1500.0).abs() < 1e-9);
        assert!((c.percent_of_one_core - 50.0).abs() < 1e-9);
        assert_eq!(c.ms_per(3000), Some(0.5));
        assert_eq!(c.ms_per(0), None);
        assert_eq!(
            parse_mem_total_kb("MemTotal:       24683520 kB\nMemFree: 1 kB\n"),
            Some(24_683_520)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n";
        assert_eq!(parse_open_files(limits), Some(20000));
        assert!(open_files_limit().is_some());
        let m = machine();
        assert!(m.cores >= 1);
    }
}
