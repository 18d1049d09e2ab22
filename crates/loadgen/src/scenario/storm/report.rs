//! What `storm` reports: the first joins, and the storm after the upgrade
//! signal; as one JSON object or a table for people.

use crate::stats::LatencySummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first joins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinFigures {
    /// Members whose first join was answered.
    pub joined: usize,
    /// Seconds from the first connect to the last join reply.
    pub wall_s: f64,
    /// Server CPU (user + system) over them, seconds (`--server-pid`).
    pub server_cpu_s: Option<f64>,
    /// Time from connect to join reply, per member.
    pub latency: LatencySummary,
}

/// The storm after the upgrade signal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StormFigures {
    /// Members that resumed after the signal.
    pub back: usize,
    /// Seconds from the signal until every member was back (`None`: not all were).
    pub all_back_s: Option<f64>,
    /// Rejoins from a position (members and senders), and how many were recovered.
    pub resumes: u64,
    /// See `resumes`.
    pub recovered: u64,
    /// `GoingAway` pushes received (the others saw the connection close).
    pub going_away: u64,
    /// Server frames that did not decode.
    pub undecodable: u64,
    /// Connection attempts that failed or were closed before the join.
    pub failed_attempts: u64,
    /// Messages posted, and acknowledged.
    pub posted: u64,
    /// See `posted`.
    pub acked: u64,
    /// Posted and neither acknowledged nor refused: in flight when the
    /// connection went away (the sender cannot know whether they were
    /// stored; members get them if they were).
    pub unanswered: u64,
    /// Member deliveries of acknowledged messages that never came.
    pub missing: u64,
    /// Deliveries a member got twice, and live ones at or before a
    /// position it had seen.
    pub duplicates: u64,
    /// See `duplicates`.
    pub out_of_order: u64,
    /// Error replies by code (`StoreFailed` while the old process hands
    /// over the log is expected; those messages were never acknowledged).
    pub refusals: BTreeMap<String, u64>,
    /// Live delivery delay (from the scheduled send) of messages scheduled
    /// before the signal.
    pub before: LatencySummary,
    /// ... from the signal until every member was back.
    pub during: LatencySummary,
    /// ... after that.
    pub after: LatencySummary,
    /// Delay of the messages the resumes replayed (missed while away).
    pub replayed: LatencySummary,
}

/// What a storm run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StormReport {
    /// Members, senders and rate asked for.
    pub members: usize,
    /// See `members`.
    pub senders: usize,
    /// See `members`.
    pub rate: u64,
    /// Joined one at a time.
    pub sequential: bool,
    /// The first joins.
    pub joins: JoinFigures,
    /// The storm, if one was made.
    pub storm: Option<StormFigures>,
    /// The generator's CPU over the run, % of one core.
    pub generator_cpu_percent: f64,
    /// What went wrong, in words; empty if nothing.
    pub problems: Vec<String>,
}

impl StormReport {
    /// The report for people.
    pub fn to_table(&self) -> String {
        let ms = |us: f64| format!("{:.1} ms", us / 1000.0);
        let lat = |l: &LatencySummary| {
            format!("n {}, p50 {}, p99 {}, max {}", l.samples, ms(l.p50_us), ms(l.p99_us), ms(l.max_us))
        };
        let j = &self.joins;
        let mut s = format!(
            "storm: {} members{}\n  joins          {} in {:.2} s; join latency {}\n",
            self.members,
            if self.sequential { ", joined one after another" } else { "" },
            j.joined,
            j.wall_s,
            lat(&j.latency)
        );
        if let Some(cpu) = j.server_cpu_s {
            s += &format!("  server CPU     {cpu:.3} s over the joins\n");
        }
        if let Some(f) = &self.storm {
            s += &format!(
                "  storm          {} senders at {} msgs/s; {} of {} members back in {}; resumes {} ({} recovered); \
                 going-away {}, failed attempts {}\n",
                self.senders,
                self.rate,
                f.back,
                self.members,
                f.all_back_s.map_or("(not all)".into(), |t| format!("{t:.2} s")),
                f.resumes,
                f.recovered,
                f.going_away,
                f.failed_attempts
            );
            s += &format!(
                "  messages       posted {}, acked {}, unanswered {}; missing {}, duplicate {}, out of order {}; \
                 refusals {:?}\n",
                f.posted, f.acked, f.unanswered, f.missing, f.duplicates, f.out_of_order, f.refusals
            );
            s += &format!("  delay before   {}\n", lat(&f.before));
            s += &format!("  delay during   {}\n", lat(&f.during));
            s += &format!("  delay after    {}\n", lat(&f.after));
            s += &format!("  replayed       {}\n", lat(&f.replayed));
        }
        s += &format!("  generator CPU  {:.0} %\n", self.generator_cpu_percent);
        for p in &self.problems {
            s += &format!("  PROBLEM        {p}\n");
        }
        s
    }
}
