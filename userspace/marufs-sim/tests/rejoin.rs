//! Rejoin race: a host that died holding the namespace lock rejoins while a
//! survivor judges it dead, replays its journal and takes it over, or while a
//! survivor that never judged it waits for the lock (`marufs_sim::rejoin_race`).
//! Every split point of the forced schedule in the swept range must leave a
//! consistent pool. Before the rejoin rule (protocol.md, "Rejoin") the takeover
//! sweep failed in about half of its schedules (free list, bitmap and chunk
//! counts corrupted by the rejoining host's late replay of its own record).
//! After the split the survivor runs alone for less than it needs to judge
//! the rejoining host dead: the host is held back but never stalls past its
//! lease. (It used to run a million steps alone: a stall past the lease at
//! the split point, which inside a record's application software fencing
//! cannot stop; splits 70 to 105 damaged the pool that way once the journal
//! was read in 512-byte windows. Stalls are `stall.rs`'s subject.) Every
//! split of host 1's first 140 media calls is swept. Negative control: a
//! rejoining host that applies its own pending record before taking the
//! lock fails 270 and 80 of the 480 schedules the sweep had before.

use marufs_sim::rejoin_race;

fn sweep(quick: bool) {
    let mut failed = vec![];
    let mut runs = 0;
    for a_first in (0..160u64).step_by(8) {
        for j_ops in 1..=140u64 {
            runs += 1;
            if let Err(e) = rejoin_race(quick, a_first, j_ops) {
                if std::env::var("MARUFS_SIM_TRACE").is_ok() {
                    eprintln!("quick {quick} a_first {a_first} j_ops {j_ops}: {e}");
                }
                failed.push((a_first, j_ops, e));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} schedules failed, first: {:?}",
        failed.len(),
        failed.first()
    );
}

/// The survivor judged the host dead and is replaying/taking it over.
#[test]
fn rejoin_while_survivor_takes_over() {
    sweep(false);
}

/// The survivor never judged the host dead: the lock the host died holding
/// must not be entered over its half-applied record.
#[test]
fn rejoin_after_dying_holding_the_lock() {
    sweep(true);
}
