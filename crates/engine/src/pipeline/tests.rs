use confstrata_core::serde_json::json;

use super::*;

fn ns(s: &str) -> NamespaceName {
    s.parse().unwrap()
}

fn plan_of(pairs: &[(&str, &str, i64)]) -> Plan {
    Plan {
        namespaces: Vec::new(),
        deleted: Vec::new(),
        layers: pairs
            .iter()
            .map(|(n, l, v)| {
                (
                    ns(n),
                    l.parse().unwrap(),
                    Some(json!({"v": v}).as_object().unwrap().clone()),
                )
            })
            .collect(),
        touched: vec![None; pairs.len()],
        sizes: vec![None; pairs.len()],
        before: vec![None; pairs.len()],
    }
}

fn scope(names: &[&str]) -> BTreeSet<NamespaceName> {
    names.iter().map(|n| ns(n)).collect()
}

fn v(o: &Overlay, n: &str, l: &str) -> Option<i64> {
    o.layers
        .get(&(ns(n), l.parse().unwrap()))
        .and_then(|d| d.as_ref())
        .and_then(|d| d["v"].as_i64())
}

#[test]
fn the_overlay_is_the_queued_writes_in_queue_order_without_the_failed() {
    let q = Arc::new(Queue::default());
    let a = Ticket::push(&q, &plan_of(&[("x", "defaults", 1)]));
    let b = Ticket::push(&q, &plan_of(&[("x", "defaults", 2), ("y", "defaults", 7)]));
    let c = Ticket::push(&q, &plan_of(&[("x", "defaults", 3)]));
    let o = q.overlay(&scope(&["x"]));
    assert_eq!(
        v(&o, "x", "defaults"),
        Some(3),
        "the newest queued write wins"
    );
    assert_eq!(v(&o, "y", "defaults"), None, "only the scope's namespaces");
    // The newest fails: the one before it is what the store will hold.
    c.finish(false);
    assert_eq!(v(&q.overlay(&scope(&["x"])), "x", "defaults"), Some(2));
    // A committed entry is in the store: out of the overlay at once, though
    // it leaves the list only from the front, after `a`.
    b.finish(true);
    assert_eq!(v(&q.overlay(&scope(&["x"])), "x", "defaults"), Some(1));
    assert_eq!(q.lock().len(), 3);
    a.finish(true);
    assert_eq!(q.lock().len(), 0);
    assert!(q.overlay(&scope(&["x", "y"])).is_empty());
}

#[test]
fn a_dropped_ticket_counts_as_failed_and_frees_the_queue() {
    let q = Arc::new(Queue::default());
    let t = Ticket::push(&q, &plan_of(&[("x", "defaults", 1)]));
    drop(t);
    assert!(q.overlay(&scope(&["x"])).is_empty());
    // Nothing pending: waiting returns at once.
    q.wait_idle(&scope(&["x"]));
    assert_eq!(q.lock().len(), 0);
}

/// A reader over fixed layers, as a transaction would see them.
struct Fixed(BTreeMap<(NamespaceName, LayerPath), Document>);

impl StateReader for Fixed {
    fn current_revision(&mut self) -> Result<u64> {
        Ok(1)
    }
    fn namespace(&mut self, _: &NamespaceName) -> Result<Option<(NamespaceSpec, u64)>> {
        Ok(None)
    }
    fn layer(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>> {
        Ok(self
            .0
            .get(&(ns.clone(), layer.clone()))
            .map(|d| (d.clone(), 1)))
    }
}

#[test]
fn a_transaction_holds_the_overlay_only_if_every_queued_write_landed() {
    let q = Arc::new(Queue::default());
    let _t = Ticket::push(&q, &plan_of(&[("x", "defaults", 2)]));
    let o = q.overlay(&scope(&["x"]));
    let doc = |v: i64| json!({"v": v}).as_object().unwrap().clone();
    let key = (ns("x"), "defaults".parse().unwrap());
    let mut landed = Fixed(BTreeMap::from([(key.clone(), doc(2))]));
    assert!(o.holds_in(&mut landed).unwrap());
    let mut lost = Fixed(BTreeMap::from([(key, doc(1))]));
    assert!(!o.holds_in(&mut lost).unwrap());
    assert!(!o.holds_in(&mut Fixed(BTreeMap::new())).unwrap());
}
