//! Fan-out: clients spread over rooms, a few of them publishing at a fixed
//! total rate, every other member of the room receiving each message. The
//! `chat` and `nats` scenarios are this workload in two wire protocols:
//! each supplies a [`Wire`], everything else (room layout, handshakes,
//! open-loop publishing, per-sender sequence checks, latency from the
//! scheduled send time at every member, the report) is here.
//!
//! Layout: client `i` is a member of room `i mod rooms`; clients
//! `0..senders` also publish, so senders are spread over the rooms too.

mod session;
mod stamp;
mod track;

pub use session::FanoutSession;
pub use stamp::{Stamp, StampError, MAX_PAYLOAD, STAMP_LEN};
pub use track::{FanoutTally, Seen, SeqTrack};

use crate::parse;
use crate::report::Report;
use crate::runner;
use crate::scenario::{Common, TimedRun};
use crate::schedule::Schedule;
use clap::Args;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after the window deliveries of its messages are waited for.
const DRAIN: Duration = Duration::from_secs(2);
/// Most sequence trackers (members × senders of their room) the run may
/// keep: 16 bytes each.
const MAX_TRACKS: usize = 64 << 20;

/// Who is in which room, and who publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Clients (connections).
    pub clients: usize,
    /// Rooms.
    pub rooms: usize,
    /// Publishing clients: `0..senders`.
    pub senders: usize,
}

impl Layout {
    /// Checks the numbers.
    pub fn new(clients: usize, rooms: usize, senders: usize) -> Result<Layout, String> {
        if clients == 0 || rooms == 0 || senders == 0 {
            return Err("--clients, --rooms and --senders must be at least 1".into());
        }
        if rooms > clients || senders > clients {
            return Err("--rooms and --senders must not exceed --clients".into());
        }
        let layout = Layout { clients, rooms, senders };
        let tracks: usize =
            (0..rooms.min(senders)).map(|r| layout.members_of(r) * layout.senders_in(r)).sum();
        if tracks > MAX_TRACKS {
            return Err(format!(
                "{clients} clients checking {senders} senders over {rooms} rooms need {tracks} sequence \
                 trackers, over the {MAX_TRACKS} this generator keeps: use fewer senders per room"
            ));
        }
        Ok(layout)
    }

    /// The room of client `i`.
    pub fn room_of(&self, i: usize) -> usize {
        i % self.rooms
    }

    /// The sender index of client `i`, if it publishes.
    pub fn sender_of(&self, i: usize) -> Option<usize> {
        (i < self.senders).then_some(i)
    }

    /// Members of `room`.
    pub fn members_of(&self, room: usize) -> usize {
        count_in(self.clients, room, self.rooms)
    }

    /// Senders in `room`.
    pub fn senders_in(&self, room: usize) -> usize {
        count_in(self.senders, room, self.rooms)
    }

    /// The senders of `room`.
    pub fn senders_of(&self, room: usize) -> impl Iterator<Item = usize> {
        (room..self.senders).step_by(self.rooms)
    }

    /// Where sender `j` is among its room's senders.
    pub fn local(&self, j: usize) -> usize {
        j / self.rooms
    }
}

/// How many of `0..n` are `room` modulo `rooms`.
fn count_in(n: usize, room: usize, rooms: usize) -> usize {
    if room >= n {
        0
    } else {
        (n - room).div_ceil(rooms)
    }
}

/// What a server frame means to a fan-out client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake completed: the client is a member of its room.
    Joined,
    /// A message published to the room (live, not history): its payload.
    Message(&'a [u8]),
    /// The server acknowledged a publication (the chat protocol's `Sent`:
    /// under `fsync = "always"`, stored on disk).
    Acked,
    /// The server refused something; the name of its error.
    Refused(Cow<'static, str>),
    /// Nothing to count (acknowledgements, presence, answered pings).
    Other,
}

/// One client's protocol: the handshake, publishing, and reading.
pub trait Wire: Send + 'static {
    /// Queues the handshake: log in, join the client's room (subscribe),
    /// and ask for the acknowledgement that makes it [`Event::Joined`].
    fn handshake(&mut self, out: &mut Vec<u8>);

    /// Queues the publication of `payload` to the client's room.
    fn publish(&mut self, out: &mut Vec<u8>, payload: &[u8]);

    /// Reads the whole server frame at the start of `input`, if it has
    /// arrived: what it means and its length. May queue an answer (a pong)
    /// in `out`. An error closes the connection.
    fn next<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> Result<Option<(Event<'a>, usize)>, String>;
}

/// Options of the fan-out scenarios.
#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    /// Clients (connections), each a member of one room (1000, 10k).
    #[arg(long, default_value = "1000", value_parser = parse::count_usize)]
    pub clients: usize,
    /// Rooms; client i joins room i mod rooms.
    #[arg(long, default_value = "1", value_parser = parse::count_usize)]
    pub rooms: usize,
    /// Clients that publish (the first ones, so spread over the rooms).
    #[arg(long, default_value = "1", value_parser = parse::count_usize)]
    pub senders: usize,
    /// Messages per second over all senders (500, 2k), on a schedule fixed
    /// in advance; latency counts from each message's scheduled time.
    #[arg(long, default_value = "1000", value_parser = parse::count)]
    pub rate: u64,
    /// More addresses of the server (the other nodes of a cluster):
    /// clients are spread round robin over --addr and these, so a room's
    /// members are split across nodes. Repeat for each.
    #[arg(long = "also", value_name = "ADDR")]
    pub also: Vec<SocketAddr>,
    /// Bytes per message (text), at least 48: run, sender, sequence number
    /// and scheduled time in hex, then a fill.
    #[arg(long, default_value = "64", value_parser = parse::size)]
    pub size: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: TimedRun,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// A number that tells this run's clients and messages from another's.
pub fn run_id() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

/// Runs the fan-out workload against `addr`; `make_wire(client, layout,
/// run)` makes each client's protocol.
pub fn run<W, F>(scenario: &str, addr: SocketAddr, args: &FanoutArgs, make_wire: F) -> Result<Report, String>
where
    W: Wire,
    F: Fn(usize, &Layout, u32) -> W + Send + Sync + 'static,
{
    let layout = Layout::new(args.clients, args.rooms, args.senders)?;
    if !(STAMP_LEN..=MAX_PAYLOAD).contains(&args.size) {
        return Err(format!(
            "--size must be {STAMP_LEN} to {MAX_PAYLOAD} bytes (the stamp takes {STAMP_LEN})"
        ));
    }
    args.common.check()?;
    let schedule = Schedule::new(args.rate, layout.senders)?;
    let mut spec = args.run.spec(addr, layout.clients, &args.common, DRAIN)?;
    spec.target.also = args.also.clone();
    spec.target.validate()?;
    let (run, size) = (run_id(), args.size);
    let outcome = runner::start(&spec, move |i| {
        FanoutSession::new(make_wire(i, &layout, run), i, layout, schedule, run, size)
    })?
    .complete(&args.common.pids(), DRAIN + Duration::from_secs(1));
    let fanout =
        outcome.tally.fanout.figures(&layout, outcome.tally.replies, args.run.duration.as_secs_f64());
    let mode =
        format!("open loop, {} msgs/s over {} sender(s)", crate::report::grouped(args.rate), layout.senders);
    let report = Report::timed(scenario, addr.to_string(), mode, &spec, &args.run, &outcome);
    Ok(Report {
        payload_bytes: size,
        rate: Some(args.rate),
        sent_per_s: fanout.messages_per_s,
        server: outcome
            .measured
            .server
            .map(|s| s.per("message", fanout.messages).per("delivery", fanout.deliveries)),
        fanout: Some(fanout),
        ..report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_senders_spread_over_rooms() {
        let l = Layout::new(10, 3, 4).unwrap();
        assert_eq!((0..3).map(|r| l.members_of(r)).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!((0..3).map(|r| l.senders_in(r)).collect::<Vec<_>>(), [2, 1, 1]);
        assert_eq!(l.senders_of(0).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(l.senders_of(2).collect::<Vec<_>>(), [2]);
        assert_eq!((l.room_of(7), l.sender_of(3), l.sender_of(4), l.local(3)), (1, Some(3), None, 1));
        let one = Layout::new(1000, 1, 1).unwrap();
        assert_eq!((one.members_of(0), one.senders_in(0)), (1000, 1));
    }

    #[test]
    fn impossible_layouts_are_refused() {
        assert!(Layout::new(0, 1, 1).is_err());
        assert!(Layout::new(10, 11, 1).is_err());
        assert!(Layout::new(10, 1, 11).is_err());
        assert!(Layout::new(20_000, 1, 20_000).is_err(), "400M trackers");
        assert!(Layout::new(20_000, 100, 20_000).is_ok());
    }
}
