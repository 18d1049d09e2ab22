//! A node's cluster counters, registered in `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What a node counts of its work with Redis.
#[derive(Debug)]
pub struct ClusterStats {
    /// Time of each pipelined round trip to Redis, in seconds.
    pub round_trip: Histogram,
    /// Pipelines sent.
    pub batches: Counter,
    /// Script calls sent.
    pub calls: Counter,
    /// Calls Redis answered with an error.
    pub errors: Counter,
    /// Calls refused at once: Redis away or the queue full.
    pub refused: Counter,
    /// Reconnections to Redis (commands and subscription).
    pub reconnects: Counter,
    /// Room messages received from Redis and published to this node's members.
    pub relayed: Counter,
    /// Room events received from Redis (messages, presence).
    pub received: Counter,
    /// Catch-ups read from the log after a gap.
    pub catch_ups: Counter,
    /// Rooms whose members had to resume (their log was lost or trimmed past a gap).
    pub rooms_lost: Counter,
    /// Direct messages delivered to this node's users from any node.
    pub directs: Counter,
}

impl Default for ClusterStats {
    fn default() -> ClusterStats {
        ClusterStats {
            // 50 µs to about 3.3 s.
            round_trip: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            batches: Counter::default(),
            calls: Counter::default(),
            errors: Counter::default(),
            refused: Counter::default(),
            reconnects: Counter::default(),
            relayed: Counter::default(),
            received: Counter::default(),
            catch_ups: Counter::default(),
            rooms_lost: Counter::default(),
            directs: Counter::default(),
        }
    }
}

impl ClusterStats {
    /// Registers every counter (clones share their values) under `chat_cluster_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("chat_cluster");
        r.register("redis_round_trip_seconds", "Pipelined round trips to Redis", self.round_trip.clone());
        r.register("redis_batches", "Pipelines sent to Redis", self.batches.clone());
        r.register("redis_calls", "Script calls sent to Redis", self.calls.clone());
        r.register("redis_errors", "Calls Redis answered with an error", self.errors.clone());
        r.register(
            "redis_refused",
            "Calls refused at once: Redis away or the queue full",
            self.refused.clone(),
        );
        r.register("redis_reconnects", "Reconnections to Redis", self.reconnects.clone());
        r.register(
            "messages_relayed",
            "Room messages from Redis published to this node's members",
            self.relayed.clone(),
        );
        r.register("events_received", "Room events received from Redis", self.received.clone());
        r.register("catch_ups", "Log reads filling a gap in a room's messages", self.catch_ups.clone());
        r.register(
            "rooms_lost",
            "Rooms whose members had to resume: their log was lost",
            self.rooms_lost.clone(),
        );
        r.register("directs_delivered", "Direct messages from Redis delivered here", self.directs.clone());
    }
}
