//! How much memory the machine can give: `MemAvailable` from `/proc/meminfo` on Linux.

/// Bytes of memory available to a new allocation without swapping (`MemAvailable` of
/// `/proc/meminfo`), or `None` where that is unknown (other systems, unreadable file).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

/// Reads the `MemAvailable:` line (in kB) of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    let unit = match fields.next() {
        Some("kB") | Some("KB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available() {
        let text = "MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   23595024 kB\n";
        assert_eq!(parse_meminfo(text), Some(23_595_024 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: x kB\n"), None);
    }
}
