//! Node identity at join (issue 13 §2): a node id in use by a live host is
//! refused (a copied fstab line); a crashed node's slot is taken only after
//! its heartbeat stood still for a lease and margin; a torn identity line is
//! never read as a free slot (the epoch stays monotonic and the dead
//! incarnation is recovered). Before the join watch, the second join of
//! `duplicate_node` succeeded and took the live host's slot over.

use marufs_sim::{crashed_node_rejoins, duplicate_node};

/// The sim's lease and margin (`tunables()` in the sim crate).
const LEASE_AND_MARGIN: u64 = 200_000 + 100_000;

#[test]
fn duplicate_node_id_is_refused() {
    let spent = duplicate_node().unwrap();
    // Refused at the live host's first renewal, long before a lease.
    assert!(spent < LEASE_AND_MARGIN, "refused after {spent} ns");
}

#[test]
fn crashed_node_rejoins_after_watching_its_slot() {
    let took = crashed_node_rejoins(false).unwrap();
    assert!(took > LEASE_AND_MARGIN, "rejoined after only {took} ns");
}

#[test]
fn torn_identity_is_not_a_free_slot() {
    let took = crashed_node_rejoins(true).unwrap();
    assert!(took > LEASE_AND_MARGIN, "rejoined after only {took} ns");
}
