//! The one compiled copy of the slice sort. `slice::sort_by` is generic over
//! the element type and the comparator, so every call site with its own
//! closure carried its own ~3.5 KiB copy of the standard library's driftsort
//! (about thirty of them in the release binary). Here the sort runs once, on
//! indices with a `dyn` comparator; each call site only adds the small
//! generic shim that builds the index list and moves its elements into place.
//! The result is the same as `sort_by`'s: stable, equal elements keep their
//! order. Meant for the daemon's short lists (containers, images, names,
//! directory entries), not for hot loops over large data.

use std::cmp::Ordering;

/// Stable sort of `v` by `cmp`, as `v.sort_by(cmp)`.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    {
        let items: &[T] = v;
        sort_indices(&mut order, &mut |a, b| cmp(&items[a], &items[b]));
    }
    permute(v, &mut order);
}

/// Stable sort of `v` by a key, as `v.sort_by_key(key)`.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// Stable sort of `v` in ascending order, as `v.sort()` (and, for elements
/// whose equal values are indistinguishable, as `v.sort_unstable()`).
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// The only instantiation of the standard sort: indices, compared through
/// the caller's elements.
fn sort_indices(order: &mut [usize], cmp: &mut dyn FnMut(usize, usize) -> Ordering) {
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Put the element at `order[i]` at position `i`, following each cycle of
/// the permutation with swaps (`order` is used up as the visited marks).
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at];
            if from == usize::MAX {
                break;
            }
            order[at] = usize::MAX;
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_stable_sort() {
        // Pairs sorted by their first half only: stability shows in the
        // second half's order.
        let mut seed = 0x2545_f491_u32;
        for len in [0usize, 1, 2, 3, 7, 20, 33, 100, 257] {
            let mut v: Vec<(u8, u32)> = (0..len as u32)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    ((seed % 7) as u8, i)
                })
                .collect();
            let mut want = v.clone();
            want.sort_by_key(|p| std::cmp::Reverse(p.0));
            sort_by(&mut v, |a, b| b.0.cmp(&a.0));
            assert_eq!(v, want, "len {len}");
        }
    }

    #[test]
    fn by_key_and_plain() {
        let mut v = vec!["pear", "fig", "apple", "kiwi", "fig"];
        let mut want = v.clone();
        want.sort_by_key(|s| s.len());
        sort_by_key(&mut v, |s| s.len());
        assert_eq!(v, want);
        let mut w: Vec<String> = ["b", "a", "c", "a"].iter().map(|s| s.to_string()).collect();
        sort(&mut w);
        assert_eq!(w, ["a", "a", "b", "c"]);
    }
}
