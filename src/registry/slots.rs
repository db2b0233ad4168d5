//! Per-upload locks that exist only while requests use them.
//!
//! Requests on one upload session take turns through its slot. A slot is created by the first
//! request that asks for it and removed when the last one holding it is done, so the map holds
//! exactly the sessions being worked on: unknown ids (answered 404) and abandoned sessions
//! leave nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::UploadId;

/// What requests on one upload share while they take turns.
#[derive(Default)]
pub(super) struct UploadSlot {
    /// Hash of the first `.0` bytes of the upload, handed from an append to the finish that
    /// follows it in the same request. Between requests the hash state saved with the session
    /// serves instead.
    pub(super) hashed: Option<(u64, oci::Hasher)>,
}

type Shared = Arc<tokio::sync::Mutex<UploadSlot>>;

/// The slots of the upload sessions requests are working on.
#[derive(Default)]
pub(super) struct UploadSlots {
    map: Mutex<HashMap<UploadId, Shared>>,
}

impl UploadSlots {
    /// Joins the requests using the slot of `id` (creating it if none is); lock it with
    /// [`SlotHold::lock`]. The slot lives until the last hold is dropped.
    pub(super) fn hold(&self, id: &UploadId) -> SlotHold<'_> {
        let mut map = self.map.lock().expect("upload slot map poisoned");
        let slot = map.entry(id.clone()).or_default().clone();
        SlotHold {
            slots: self,
            id: id.clone(),
            slot: Some(slot),
        }
    }

    /// How many slots exist: the upload sessions requests are working on right now.
    pub(super) fn len(&self) -> usize {
        self.map.lock().expect("upload slot map poisoned").len()
    }
}

/// A request's claim on an upload's slot; dropping the last claim removes the slot.
pub(super) struct SlotHold<'a> {
    slots: &'a UploadSlots,
    id: UploadId,
    slot: Option<Shared>,
}

impl SlotHold<'_> {
    /// Waits for the other requests on this upload and locks its slot.
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, UploadSlot> {
        self.slot
            .as_ref()
            .expect("a slot hold keeps its slot until dropped")
            .lock()
            .await
    }
}

impl Drop for SlotHold<'_> {
    fn drop(&mut self) {
        // Holds are created and dropped under the map's lock, so the count read here cannot
        // change before the entry is removed: two references (the map's and this one) mean
        // no other request holds or waits for the slot.
        let mut map = self.slots.map.lock().expect("upload slot map poisoned");
        if let Some(slot) = self.slot.take() {
            let last = Arc::strong_count(&slot) == 2
                && map.get(&self.id).is_some_and(|s| Arc::ptr_eq(s, &slot));
            if last {
                map.remove(&self.id);
            }
            drop(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_lives_while_someone_holds_it() {
        let slots = UploadSlots::default();
        let id = UploadId::generate();
        let first = slots.hold(&id);
        let second = slots.hold(&id);
        assert_eq!(slots.len(), 1);
        first.lock().await.hashed = Some((1, oci::Algorithm::Sha256.hasher()));
        drop(first);
        assert_eq!(slots.len(), 1, "the second hold keeps the slot");
        assert!(second.lock().await.hashed.is_some(), "and shares its state");
        drop(second);
        assert_eq!(slots.len(), 0);
        let third = slots.hold(&id);
        assert!(
            third.lock().await.hashed.is_none(),
            "a new slot starts empty"
        );
        drop(third);
        assert_eq!(slots.len(), 0);
    }
}
