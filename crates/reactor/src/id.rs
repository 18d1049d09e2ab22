//! Connection ids that stay valid across threads and never reach a newer
//! connection that reused the same slab slot.

use std::fmt;

const SLOT_BITS: u32 = 24;
const GEN_BITS: u32 = 24;
const SERVICE_BITS: u32 = 8;

/// Largest slot index a loop hands out for one service (exclusive).
///
/// The all-ones slot is kept for the service's listener token.
pub(crate) const MAX_SLOTS: usize = (1 << SLOT_BITS) - 1;
pub(crate) const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// Largest number of services one reactor hosts.
pub(crate) const MAX_SERVICES: usize = (1 << SERVICE_BITS) - 1;
/// Largest number of event loops one reactor runs.
pub(crate) const MAX_LOOPS: usize = 256;

/// Identifies one connection of a reactor, from any thread.
///
/// It packs the event loop that owns the connection, the service it belongs
/// to, its slab slot and a generation. The generation makes a stale id (kept
/// after its connection closed) miss instead of reaching a newer connection
/// that reuses the slot: sends and closes to it are dropped.
///
/// Layout (most to least significant): loop 8 bits, service 8, generation 24,
/// slot 24.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) fn new(loop_index: usize, service: ServiceId, generation: u32, slot: usize) -> ConnId {
        let service = service.0;
        debug_assert!(loop_index < MAX_LOOPS && service <= MAX_SERVICES && slot <= MAX_SLOTS);
        ConnId(
            (loop_index as u64) << (SERVICE_BITS + GEN_BITS + SLOT_BITS)
                | (service as u64) << (GEN_BITS + SLOT_BITS)
                | u64::from(generation & GEN_MASK) << SLOT_BITS
                | slot as u64,
        )
    }

    /// Index of the event loop that owns the connection.
    pub fn loop_index(self) -> usize {
        (self.0 >> (SERVICE_BITS + GEN_BITS + SLOT_BITS)) as usize
    }

    /// The service the connection belongs to.
    pub fn service(self) -> ServiceId {
        ServiceId(((self.0 >> (GEN_BITS + SLOT_BITS)) & ((1 << SERVICE_BITS) - 1)) as usize)
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> SLOT_BITS) & u64::from(GEN_MASK)) as u32
    }

    pub(crate) fn slot(self) -> usize {
        (self.0 & ((1 << SLOT_BITS) - 1)) as usize
    }

    /// The id as one integer, e.g. for logs or as a map key in another process.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`ConnId::as_u64`].
    pub fn from_u64(raw: u64) -> ConnId {
        ConnId(raw)
    }

    pub(crate) fn token(self) -> mio::Token {
        mio::Token(self.0 as usize)
    }

    /// The id a context carries when it has no current connection (in
    /// `on_loop_notify`): it names no connection, so sends to it are dropped.
    pub(crate) fn none(loop_index: usize, service: ServiceId) -> ConnId {
        ConnId::new(loop_index, service, 0, MAX_SLOTS)
    }

    /// Token of a service's listener on a loop: the reserved all-ones slot.
    pub(crate) fn listener_token(loop_index: usize, service: ServiceId) -> mio::Token {
        ConnId::new(loop_index, service, 0, MAX_SLOTS).token()
    }

    pub(crate) fn from_token(token: mio::Token) -> ConnId {
        ConnId(token.0 as u64)
    }

    pub(crate) fn is_listener(self) -> bool {
        self.slot() == MAX_SLOTS
    }
}

/// Names one service of a reactor (a listener, its handler and its limits):
/// the `n`-th registered with [`ReactorBuilder::service`], counting from 0.
///
/// A type of its own so that it cannot be mistaken for a loop index. Get it
/// from [`ReactorHandle::service_id`] by name, from [`ConnId::service`], from
/// [`Context::service`], or, for the services a program registered itself,
/// with [`ServiceId::from_index`].
///
/// [`ReactorBuilder::service`]: crate::ReactorBuilder::service
/// [`ReactorHandle::service_id`]: crate::ReactorHandle::service_id
/// [`Context::service`]: crate::Context::service
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(usize);

impl ServiceId {
    /// The service registered `index`-th (0 for the first). An index past the
    /// services a reactor has names none: methods given it return `None` or
    /// an error.
    pub const fn from_index(index: usize) -> ServiceId {
        ServiceId(index)
    }

    /// Its registration index, e.g. to index a table of per-service data.
    pub const fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {}", self.0)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConnId(loop {} service {} slot {} gen {})",
            self.loop_index(),
            self.service().0,
            self.slot(),
            self.generation()
        )
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}#{}", self.loop_index(), self.service().0, self.slot(), self.generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let id = ConnId::new(3, ServiceId(7), 0x00AB_CDEF, 123_456);
        assert_eq!(id.loop_index(), 3);
        assert_eq!(id.service(), ServiceId(7));
        assert_eq!(id.generation(), 0x00AB_CDEF);
        assert_eq!(id.slot(), 123_456);
        assert_eq!(ConnId::from_token(id.token()), id);
        assert_eq!(ConnId::from_u64(id.as_u64()), id);
    }

    #[test]
    fn generation_wraps_within_its_bits() {
        let id = ConnId::new(255, ServiceId(254), u32::MAX, MAX_SLOTS - 1);
        assert_eq!(id.loop_index(), 255);
        assert_eq!(id.service(), ServiceId(254));
        assert_eq!(id.generation(), GEN_MASK);
        assert_eq!(id.slot(), MAX_SLOTS - 1);
        assert!(!id.is_listener());
        assert!(ConnId::from_token(ConnId::listener_token(1, ServiceId(2))).is_listener());
    }

    #[test]
    fn same_slot_new_generation_differs() {
        assert_ne!(ConnId::new(0, ServiceId(0), 1, 5), ConnId::new(0, ServiceId(0), 2, 5));
    }
}
