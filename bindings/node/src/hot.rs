//! The `getKey` path: a free function over a thread-local table of rotators.
//!
//! A call into a napi class method costs several times the rest of `getKey`: the receiver is
//! unwrapped and its class checked on every call. A plain function taking a small slot number
//! skips both. Each JavaScript thread (the main one, each worker) has its own table, as its
//! objects are its own; the class instance owns its slot and frees it when destroyed or
//! collected.

use std::cell::RefCell;

use ai_key_rotator::KeyRotator;
use napi_derive::napi;

use crate::registry::Registry;

pub(crate) struct Hot {
    pub(crate) rotator: KeyRotator,
    pub(crate) registry: Registry,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

#[derive(Default)]
struct Table {
    slots: Vec<Option<Hot>>,
    free: Vec<u32>,
}

/// Puts a rotator in the table; returns its slot.
pub(crate) fn insert(rotator: KeyRotator) -> u32 {
    TABLE.with_borrow_mut(|t| {
        let hot = Some(Hot {
            rotator,
            registry: Registry::default(),
        });
        match t.free.pop() {
            Some(slot) => {
                t.slots[slot as usize] = hot;
                slot
            }
            None => {
                t.slots.push(hot);
                (t.slots.len() - 1) as u32
            }
        }
    })
}

/// Frees a slot (the rotator is destroyed or collected).
pub(crate) fn remove(slot: u32) {
    // Dropping the rotator's handle may run its destructor; take it out of the table first so
    // that nothing re-enters the table while it is borrowed.
    let hot = TABLE.with_borrow_mut(|t| {
        let hot = t.slots.get_mut(slot as usize).and_then(Option::take);
        if hot.is_some() {
            t.free.push(slot);
        }
        hot
    });
    drop(hot);
}

/// Runs `f` on the slot's entry. Callers hold a live slot (the class checks it is not
/// destroyed first), so a missing entry is a bug, answered with `None`.
pub(crate) fn with<R>(slot: u32, f: impl FnOnce(&mut Hot) -> R) -> Option<R> {
    TABLE.with_borrow_mut(|t| t.slots.get_mut(slot as usize)?.as_mut().map(f))
}

/// The handle of the credential `getKey` hands out for `provider` (an index from
/// `providerIndex`), or -1 when none is available.
#[napi]
pub fn get_key_at(slot: u32, provider: u32) -> i32 {
    with(slot, |hot| {
        let Some(name) = hot.registry.provider_name(provider) else {
            return -1;
        };
        match hot.rotator.get_key(name) {
            Some(credential) => hot.registry.handle(provider, credential),
            None => -1,
        }
    })
    .unwrap_or(-1)
}
