use super::*;

fn ns(s: &str) -> NamespaceName {
    s.parse().unwrap()
}

fn want(pairs: &[(&str, Mode)]) -> Want {
    let mut w = Want::default();
    for (n, m) in pairs {
        w.add(&ns(n), *m);
    }
    w
}

#[test]
fn shared_locks_share_and_exclusive_ones_exclude() {
    let locks = Arc::new(NamespaceLocks::default());
    let a = locks.acquire(want(&[("a", Mode::Shared), ("b", Mode::Shared)]));
    let b = locks.try_acquire(want(&[("a", Mode::Shared)])).unwrap();
    assert!(locks.try_acquire(want(&[("a", Mode::Exclusive)])).is_none());
    // An unrelated namespace is free whatever is held elsewhere.
    let c = locks.try_acquire(want(&[("c", Mode::Exclusive)])).unwrap();
    assert!(locks.try_acquire(want(&[("c", Mode::Shared)])).is_none());
    drop((a, b, c));
    assert!(locks.try_acquire(want(&[("a", Mode::Exclusive)])).is_some());
}

#[test]
fn entries_live_only_while_held() {
    let locks = Arc::new(NamespaceLocks::default());
    let held = locks.acquire(want(&[("a", Mode::Exclusive), ("b", Mode::Shared)]));
    assert_eq!(locks.len(), 2);
    // A failed try leaves nothing behind either.
    assert!(
        locks
            .try_acquire(want(&[("x", Mode::Shared), ("a", Mode::Shared)]))
            .is_none()
    );
    assert_eq!(locks.len(), 2);
    drop(held);
    assert_eq!(locks.len(), 0);
}
