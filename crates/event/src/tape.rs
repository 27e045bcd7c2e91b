//! Reading a simd-json tape without building a DOM: value spans, object entries with
//! repeated keys resolved (IN2), key hashes.

use simd_json::value::tape::Node;

/// Number of tape nodes that the value at `i` spans.
pub fn span(nodes: &[Node<'_>], i: usize) -> usize {
    match nodes[i] {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// Scratch space for [`object_entries`]: the entries' key hashes and an open-addressing
/// table that finds repeated keys.
#[derive(Debug, Default)]
pub struct EntryScratch {
    /// FxHash of each entry's key, aligned with the entries.
    pub hashes: Vec<u64>,
    /// Slots holding entry index + 1; 0 is empty. Left all-empty after each use.
    slots: Vec<u32>,
}

/// Collects the entries of the object at `obj` as (key, value) node indices, in order,
/// keeping for a repeated key the last value at the first key's position (IN2). The
/// keys' hashes are left in `scratch.hashes`, aligned with `entries`.
pub fn object_entries(
    nodes: &[Node<'_>],
    obj: usize,
    entries: &mut Vec<(usize, usize)>,
    scratch: &mut EntryScratch,
) {
    entries.clear();
    scratch.hashes.clear();
    let Node::Object { len, .. } = nodes[obj] else {
        return;
    };
    let mut i = obj + 1;
    for _ in 0..len {
        entries.push((i, i + 1));
        scratch.hashes.push(hash_key(key_of(nodes, i)));
        i = i + 1 + span(nodes, i + 1);
    }
    if entries.len() < 2 || !has_repeated_key(nodes, entries, scratch) {
        return;
    }
    // Rare: resolve repeats pairwise.
    let mut keep = vec![true; entries.len()];
    for a in 0..entries.len() {
        if !keep[a] {
            continue;
        }
        for b in a + 1..entries.len() {
            if keep[b] && key_of(nodes, entries[a].0) == key_of(nodes, entries[b].0) {
                entries[a].1 = entries[b].1;
                keep[b] = false;
            }
        }
    }
    let mut pos = 0;
    entries.retain(|_| {
        pos += 1;
        keep[pos - 1]
    });
    let mut pos = 0;
    scratch.hashes.retain(|_| {
        pos += 1;
        keep[pos - 1]
    });
}

/// Whether two entries share a key, by inserting the key hashes into a linear-probing
/// table at most half full: one probe or two per key, where sorting the hashes cost
/// 4% of a monoschema run (callgrind, 100k events).
fn has_repeated_key(
    nodes: &[Node<'_>],
    entries: &[(usize, usize)],
    scratch: &mut EntryScratch,
) -> bool {
    let size = (entries.len() * 2).next_power_of_two();
    if scratch.slots.len() < size {
        scratch.slots.resize(size, 0);
    }
    let mask = size - 1;
    let slots = &mut scratch.slots[..size];
    let hashes = &scratch.hashes;
    let mut repeated = false;
    'keys: for (n, &h) in hashes.iter().enumerate() {
        let mut at = (h >> 32) as usize & mask;
        loop {
            match slots[at] {
                0 => {
                    slots[at] = n as u32 + 1;
                    break;
                }
                other => {
                    let m = other as usize - 1;
                    if hashes[m] == h && key_of(nodes, entries[m].0) == key_of(nodes, entries[n].0)
                    {
                        repeated = true;
                        break 'keys;
                    }
                    at = (at + 1) & mask;
                }
            }
        }
    }
    slots.fill(0);
    repeated
}

/// Whether an object of `len` entries at `obj` repeats a key (pairwise; for small objects).
pub(crate) fn has_duplicate_keys(nodes: &[Node<'_>], obj: usize, len: usize) -> bool {
    let mut keys = [""; 8];
    let mut j = obj + 1;
    for k in keys.iter_mut().take(len) {
        *k = key_of(nodes, j);
        j += 1 + span(nodes, j + 1);
    }
    let keys = &keys[..len];
    keys.iter()
        .enumerate()
        .any(|(a, ka)| keys[a + 1..].contains(ka))
}

pub(crate) fn key_of<'i>(nodes: &[Node<'i>], k: usize) -> &'i str {
    match nodes[k] {
        Node::String(s) => s,
        _ => "",
    }
}

/// The hash of a property key that shaping's column lookup also uses.
pub fn hash_key(key: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(key.as_bytes());
    h.finish()
}
