//! Positional audio: which voice the service sends in which audio slot, and where the app placed
//! each voice, become each slot's gains in the mixer.

use std::collections::HashMap;

use call_protocol::{AUDIO_SLOTS, CallId, CommunicationIdentifier};

use crate::audio::{Gains, Playout};

/// The voices' places and the calls' slot assignments.
#[derive(Debug, Default)]
pub(super) struct Voices {
    /// Per call, whose voice each audio slot carries.
    slots: HashMap<CallId, Vec<Option<CommunicationIdentifier>>>,
    /// Where the app placed each participant's voice.
    gains: HashMap<CommunicationIdentifier, Gains>,
}

impl Voices {
    /// The service says whose voice each slot of `call_id` carries now.
    pub(super) fn slots(
        &mut self,
        call_id: CallId,
        slots: Vec<Option<CommunicationIdentifier>>,
        playout: &Playout,
    ) {
        self.slots.insert(call_id, slots);
        self.apply(playout);
    }

    /// The app places `participant`'s voice (`None`: back to the centre).
    pub(super) fn place(
        &mut self,
        participant: CommunicationIdentifier,
        gains: Option<Gains>,
        playout: &Playout,
    ) {
        match gains {
            Some(g) => self.gains.insert(participant, g),
            None => self.gains.remove(&participant),
        };
        self.apply(playout);
    }

    /// A call ended: its slots carry nobody.
    pub(super) fn call_ended(&mut self, call_id: &CallId, playout: &Playout) {
        if self.slots.remove(call_id).is_some() {
            self.apply(playout);
        }
    }

    /// Each slot's gains: those of the voice some call sends in it, else the centre.
    fn apply(&self, playout: &Playout) {
        for slot in 0..AUDIO_SLOTS {
            let gains = self
                .slots
                .values()
                .find_map(|s| s.get(slot).cloned().flatten())
                .and_then(|id| self.gains.get(&id).copied())
                .unwrap_or(Gains::CENTRE);
            playout.set_gains(slot, gains);
        }
    }
}
