//! The output layers of fastText's losses at prediction time, with its exact arithmetic:
//! `std_log(x) = log(x + 1e-5)` in double, the 512-entry sigmoid table of one-vs-all, the
//! Huffman tree of hierarchical softmax, and libstdc++'s heap algorithms, whose moves decide
//! the order of labels with equal scores.

/// A candidate label: (fastText's log-score, label index).
pub(crate) type Scored = (f32, u32);

const SIGMOID_TABLE_SIZE: usize = 512;
const MAX_SIGMOID: f32 = 8.0;

/// `Loss::std_log`: the float is widened before adding 1e-5 (a double constant).
#[inline]
pub(crate) fn std_log(x: f32) -> f32 {
    (f64::from(x) + 1e-5).ln() as f32
}

/// fastText's sigmoid lookup table (`Loss::Loss`): `expf`, then the division in double.
pub(crate) fn sigmoid_table() -> Vec<f32> {
    (0..=SIGMOID_TABLE_SIZE)
        .map(|i| {
            let x = (i as f32 * 2.0 * MAX_SIGMOID) / SIGMOID_TABLE_SIZE as f32 - MAX_SIGMOID;
            (1.0 / (1.0 + f64::from((-x).exp()))) as f32
        })
        .collect()
}

/// `Loss::sigmoid`: table lookup, truncating the index.
#[inline]
pub(crate) fn sigmoid(table: &[f32], x: f32) -> f32 {
    if x < -MAX_SIGMOID {
        0.0
    } else if x > MAX_SIGMOID {
        1.0
    } else {
        let i = ((x + MAX_SIGMOID) * SIGMOID_TABLE_SIZE as f32 / MAX_SIGMOID / 2.0) as usize;
        table.get(i).copied().unwrap_or(0.0)
    }
}

/// `SoftmaxLoss::computeOutput`: `exp` is the double one there (unqualified call on a float).
pub(crate) fn softmax(out: &mut [f32]) {
    let Some(&first) = out.first() else { return };
    let mut max = first;
    for &o in out.iter() {
        // std::max(output[i], max)
        max = if o < max { max } else { o };
    }
    let mut z = 0.0f32;
    for o in out.iter_mut() {
        *o = f64::from(*o - max).exp() as f32;
        z += *o;
    }
    for o in out.iter_mut() {
        *o /= z;
    }
}

// libstdc++'s heap algorithms with fastText's `comparePairs` (l.first > r.first): a min-heap
// on the score. Reproduced move for move so that ties come out in fastText's order.

#[inline]
fn comp(a: Scored, b: Scored) -> bool {
    a.0 > b.0
}

fn sift_up(h: &mut [Scored], mut hole: usize, top: usize, value: Scored) {
    while hole > top {
        let parent = (hole - 1) / 2;
        if !comp(h[parent], value) {
            break;
        }
        h[hole] = h[parent];
        hole = parent;
    }
    h[hole] = value;
}

fn adjust_heap(h: &mut [Scored], len: usize, value: Scored) {
    let top = 0;
    let mut hole = 0;
    let mut second = 0;
    while second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if comp(h[second], h[second - 1]) {
            second -= 1;
        }
        h[hole] = h[second];
        hole = second;
    }
    if len & 1 == 0 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        h[hole] = h[second - 1];
        hole = second - 1;
    }
    sift_up(h, hole, top, value);
}

/// `std::push_heap` after `push_back`.
pub(crate) fn push_heap(h: &mut [Scored]) {
    if let Some(&value) = h.last() {
        sift_up(h, h.len() - 1, 0, value);
    }
}

/// `std::pop_heap` then `pop_back`.
pub(crate) fn pop_heap(h: &mut Vec<Scored>) {
    let len = h.len();
    if len > 1 {
        let last = len - 1;
        let value = h[last];
        h[last] = h[0];
        adjust_heap(&mut h[..last], last, value);
    }
    h.pop();
}

/// `std::sort_heap`: best first.
pub(crate) fn sort_heap(h: &mut [Scored]) {
    let mut last = h.len();
    while last > 1 {
        last -= 1;
        let value = h[last];
        h[last] = h[0];
        adjust_heap(&mut h[..last], last, value);
    }
}

/// `Loss::findKBest` over per-label probabilities (softmax, one-vs-all).
pub(crate) fn find_k_best(k: usize, threshold: f32, out: &[f32], heap: &mut Vec<Scored>) {
    for (i, &p) in out.iter().enumerate() {
        if p < threshold {
            continue;
        }
        if heap.len() == k {
            // Most labels lose to the heap's minimum by far: skip the log when the gap proves
            // std_log(p) < std_log(min). Both logs lie in [-11.6, 0], where floats are at
            // most 2^-20 apart; a relative gap over 4e-6 puts the exact logs more than two
            // such steps apart, so their roundings are strictly ordered too.
            let min_p = out[heap[0].1 as usize];
            if p >= 0.0 && f64::from(min_p) - f64::from(p) > 4e-6 * (f64::from(p) + 1e-5) {
                continue;
            }
            let lp = std_log(p);
            if lp < heap[0].0 {
                continue;
            }
            heap.push((lp, i as u32));
        } else {
            heap.push((std_log(p), i as u32));
        }
        push_heap(heap);
        if heap.len() > k {
            pop_heap(heap);
        }
    }
    sort_heap(heap);
}

/// The Huffman tree of hierarchical softmax over the labels' counts
/// (`HierarchicalSoftmaxLoss::buildTree`). Node `n >= osz` is internal, scored by output row
/// `n - osz`; nodes below `osz` are the labels.
pub(crate) struct Tree {
    osz: usize,
    /// Children of internal node `osz + i`.
    pub(crate) children: Vec<(u32, u32)>,
}

impl Tree {
    /// None when the counts would make fastText link a node to itself (corrupt counts).
    pub(crate) fn build(counts: &[i64]) -> Option<Tree> {
        let osz = counts.len();
        if osz == 0 {
            return None;
        }
        let total = 2 * osz - 1;
        let mut count = vec![1e15 as i64; total];
        count[..osz].copy_from_slice(counts);
        let mut children = Vec::with_capacity(osz - 1);
        let mut leaf = osz as isize - 1;
        let mut node = osz;
        for i in osz..total {
            let mut mini = [0usize; 2];
            for m in &mut mini {
                if leaf >= 0 && count[leaf as usize] < count[node] {
                    *m = leaf as usize;
                    leaf -= 1;
                } else {
                    *m = node;
                    node += 1;
                }
            }
            if mini[1] >= i {
                return None;
            }
            count[i] = count[mini[0]].wrapping_add(count[mini[1]]);
            children.push((mini[0] as u32, mini[1] as u32));
        }
        Some(Tree { osz, children })
    }

    /// `HierarchicalSoftmaxLoss::dfs` from the root, with an explicit stack (a deep tree
    /// must not overflow the call stack) visiting nodes in the same order: left subtree,
    /// then right, each node checked against the heap as it stands when it is reached.
    /// `dots[i]` is the output row product of internal node `osz + i`.
    pub(crate) fn dfs(
        &self,
        k: usize,
        threshold: f32,
        dots: &[f32],
        heap: &mut Vec<Scored>,
        stack: &mut Vec<(u32, f32)>,
    ) {
        let min_score = std_log(threshold);
        stack.clear();
        stack.push(((2 * self.osz - 2) as u32, 0.0));
        while let Some((node, score)) = stack.pop() {
            if score < min_score {
                continue;
            }
            if heap.len() == k && score < heap[0].0 {
                continue;
            }
            let node = node as usize;
            if node < self.osz {
                heap.push((score, node as u32));
                push_heap(heap);
                if heap.len() > k {
                    pop_heap(heap);
                }
                continue;
            }
            let f = dots[node - self.osz];
            let f = 1.0f32 / (1.0f32 + (-f).exp());
            let (left, right) = self.children[node - self.osz];
            stack.push((right, score + std_log(f)));
            stack.push((left, score + std_log(1.0 - f)));
        }
        sort_heap(heap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_tree_from_counts() {
        // Labels sorted by decreasing count, as fastText stores them.
        let t = Tree::build(&[5, 3, 2, 1]).unwrap();
        // 1+2 -> node 4; then node 4 (3) before leaf 1 (3): a leaf wins only when strictly
        // smaller; 5+6 -> root 6.
        assert_eq!(t.children, vec![(3, 2), (4, 1), (0, 5)]);
        let t = Tree::build(&[7]).unwrap();
        assert!(t.children.is_empty());
        // Equal counts: the internal node (count 2) loses to leaves only when strictly smaller.
        let t = Tree::build(&[1, 1, 1]).unwrap();
        assert_eq!(t.children, vec![(2, 1), (0, 3)]);
        assert!(Tree::build(&[]).is_none());
        // Counts beyond fastText's 1e15 sentinel would make a node its own child.
        assert!(Tree::build(&[2_000_000_000_000_000, 1]).is_none());
    }

    #[test]
    fn hs_single_label_is_certain() {
        let t = Tree::build(&[3]).unwrap();
        let (mut heap, mut stack) = (Vec::new(), Vec::new());
        t.dfs(1, 0.0, &[], &mut heap, &mut stack);
        assert_eq!(heap, vec![(0.0, 0)]);
    }

    #[test]
    fn hs_probabilities_sum_to_one() {
        let t = Tree::build(&[9, 5, 4, 2, 1]).unwrap();
        let dots = [0.3, -1.2, 2.0, 0.01];
        let (mut heap, mut stack) = (Vec::new(), Vec::new());
        t.dfs(5, 0.0, &dots, &mut heap, &mut stack);
        assert_eq!(heap.len(), 5);
        let total: f32 = heap.iter().map(|s| s.0.exp()).sum();
        assert!((total - 1.0).abs() < 1e-3, "{total}");
        assert!(heap.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    /// The pre-check in find_k_best must never change what the plain loop of fastText does.
    #[test]
    fn find_k_best_shortcut_is_exact() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        for round in 0..2000 {
            let n = 1 + round % 40;
            let mut out: Vec<f32> = (0..n)
                .map(|_| match round % 4 {
                    0 => rnd(),
                    1 => rnd() * 1e-6,
                    2 => 0.5 + rnd() * 1e-6,
                    _ => (rnd() * 10.0).round() / 10.0,
                })
                .collect();
            if round % 3 == 0 {
                softmax(&mut out);
            }
            for k in [1, 2, 3, n] {
                let mut fast = Vec::new();
                find_k_best(k, 0.0, &out, &mut fast);
                let mut plain: Vec<Scored> = Vec::new();
                for (i, &p) in out.iter().enumerate() {
                    if heap_full_and_worse(&plain, k, std_log(p)) {
                        continue;
                    }
                    plain.push((std_log(p), i as u32));
                    push_heap(&mut plain);
                    if plain.len() > k {
                        pop_heap(&mut plain);
                    }
                }
                sort_heap(&mut plain);
                assert_eq!(fast, plain, "round {round} k {k} {out:?}");
            }
        }
    }

    fn heap_full_and_worse(h: &[Scored], k: usize, lp: f32) -> bool {
        h.len() == k && lp < h[0].0
    }

    #[test]
    fn heap_sorts_best_first_keeping_libstdcxx_tie_order() {
        let mut h = Vec::new();
        for (i, s) in [1.0f32, 3.0, 2.0, 3.0, 0.5, 3.0].iter().enumerate() {
            h.push((*s, i as u32));
            push_heap(&mut h);
        }
        sort_heap(&mut h);
        let scores: Vec<f32> = h.iter().map(|s| s.0).collect();
        assert_eq!(scores, vec![3.0, 3.0, 3.0, 2.0, 1.0, 0.5]);
        // The order of the tied 3.0s is libstdc++'s (checked against g++ 12), as fastText
        // reports it.
        let ids: Vec<u32> = h.iter().take(3).map(|s| s.1).collect();
        assert_eq!(ids, vec![3, 1, 5]);
        // findKBest with k=2 over ties: the survivors and their order, also from g++ 12.
        let out = [2.0f32, 2.0, 1.0, 2.0, 2.0, 3.0, 2.0];
        let mut k2: Vec<Scored> = Vec::new();
        for (i, &s) in out.iter().enumerate() {
            if heap_full_and_worse(&k2, 2, s) {
                continue;
            }
            k2.push((s, i as u32));
            push_heap(&mut k2);
            if k2.len() > 2 {
                pop_heap(&mut k2);
            }
        }
        sort_heap(&mut k2);
        assert_eq!(k2, vec![(3.0, 5), (2.0, 6)]);
    }

    #[test]
    fn sigmoid_table_matches_fasttext_endpoints() {
        let t = sigmoid_table();
        assert_eq!(t.len(), 513);
        assert_eq!(sigmoid(&t, -9.0), 0.0);
        assert_eq!(sigmoid(&t, 9.0), 1.0);
        assert_eq!(sigmoid(&t, 0.0), t[256]);
        assert!((t[256] - 0.5).abs() < 1e-7);
        assert_eq!(sigmoid(&t, 8.0), t[512]);
    }
}
