//! Loopback ports for what Slipway starts (services, databases): chosen outside the
//! kernel's ephemeral range, so no outgoing connection on the machine can take one between
//! its choice and the server's own bind.

use std::io;
use std::net::TcpListener;
use std::ops::Range;

/// Where the kernel takes ports for outgoing connections and `bind(…:0)`.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Below this, ports are the well-known and registered ones most servers take.
const FLOOR: u16 = 10_000;

/// How many random candidates are tried for one port before giving up.
const ATTEMPTS: usize = 200;

/// `count` distinct loopback ports free now: each is held until all are chosen, so no two
/// of them are one port.
pub fn free(count: usize) -> io::Result<Vec<u16>> {
    let range = outside_ephemeral(&std::fs::read_to_string(EPHEMERAL_RANGE).unwrap_or_default());
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(bind_one(range.clone())?);
    }
    held.iter().map(|listener| Ok(listener.local_addr()?.port())).collect()
}

/// One loopback port free now.
pub fn free_one() -> io::Result<u16> {
    Ok(free(1)?[0])
}

/// A listener on a random free port of `range`, or on one the kernel picks where no range
/// is left outside its ephemeral one.
fn bind_one(range: Option<Range<u16>>) -> io::Result<TcpListener> {
    let Some(range) = range else { return TcpListener::bind("127.0.0.1:0") };
    for _ in 0..ATTEMPTS {
        match TcpListener::bind(("127.0.0.1", fastrand::u16(range.clone()))) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => continue,
            bound => return bound,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("{ATTEMPTS} random loopback ports in {range:?} were all in use"),
    ))
}

/// The longer run of ports outside the ephemeral range `low high` (as the kernel writes
/// it) and above `FLOOR`, if it holds at least a thousand.
fn outside_ephemeral(ephemeral: &str) -> Option<Range<u16>> {
    let mut bounds = ephemeral.split_whitespace().map(str::parse::<u16>);
    let (low, high) = match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) => (low, high),
        _ => (32_768, 60_999),
    };
    let below = FLOOR..low.max(FLOOR);
    let above = high.saturating_add(1).max(FLOOR)..u16::MAX;
    let longer = if below.len() >= above.len() { below } else { above };
    (longer.len() >= 1_000).then_some(longer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_chosen_below_the_ephemeral_range() {
        assert_eq!(outside_ephemeral("32768\t60999\n"), Some(10_000..32_768));
    }

    #[test]
    fn ports_are_chosen_above_an_ephemeral_range_low_in_the_numbers() {
        assert_eq!(outside_ephemeral("1024 40000"), Some(40_001..u16::MAX));
    }

    #[test]
    fn the_kernel_picks_when_the_ephemeral_range_leaves_no_room() {
        assert_eq!(outside_ephemeral("1024 65535"), None);
    }

    #[test]
    fn an_unreadable_range_is_taken_as_the_kernels_default() {
        assert_eq!(outside_ephemeral(""), Some(10_000..32_768));
    }

    #[test]
    fn ports_chosen_together_are_distinct_and_free() {
        let ports = free(8).unwrap();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 8);
        for port in ports {
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
