//! The commands typed into `chat-client`, in both modes.

/// A parsed input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/join ROOM`
    Join(&'a str),
    /// `/leave [ROOM]`
    Leave(Option<&'a str>),
    /// `/msg NICK [TEXT]`: the text is empty when left out (the terminal
    /// UI then opens the conversation; scripts must give a text).
    Msg(&'a str, &'a str),
    /// `/rooms`
    Rooms,
    /// `/who [ROOM]`
    Who(Option<&'a str>),
    /// `/switch NAME|NUMBER` (terminal UI only)
    Switch(&'a str),
    /// `/reconnect` (terminal UI only)
    Reconnect,
    /// `/ping`
    Ping,
    /// `/quit`
    Quit,
    /// `/help`
    Help,
    /// Any other text: said in the current room or conversation.
    Say(&'a str),
    /// An empty line.
    Nothing,
}

impl Command<'_> {
    /// Whether only the terminal UI knows this command.
    pub fn is_interactive_only(&self) -> bool {
        matches!(self, Command::Switch(_) | Command::Reconnect)
    }

    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Join(_) => "join",
            Command::Leave(_) => "leave",
            Command::Msg(..) => "msg",
            Command::Rooms => "rooms",
            Command::Who(_) => "who",
            Command::Switch(_) => "switch",
            Command::Reconnect => "reconnect",
            Command::Ping => "ping",
            Command::Quit => "quit",
            Command::Help => "help",
            Command::Say(_) | Command::Nothing => "",
        }
    }
}

/// Parses one input line (a trailing newline is ignored). A leading `//`
/// says a text starting with `/`.
pub fn parse_command(line: &str) -> Result<Command<'_>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Command::Say(line));
    };
    if command.starts_with('/') {
        return Ok(Command::Say(command));
    }
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    let arg = (!rest.is_empty()).then_some(rest);
    Ok(match (name, arg) {
        ("join", Some(room)) => Command::Join(room),
        ("leave", room) => Command::Leave(room),
        ("msg", Some(rest)) => match rest.split_once(' ') {
            Some((nick, text)) => Command::Msg(nick, text.trim_start()),
            None => Command::Msg(rest, ""),
        },
        ("rooms", None) => Command::Rooms,
        ("who", room) => Command::Who(room),
        ("switch", Some(target)) => Command::Switch(target),
        ("reconnect", None) => Command::Reconnect,
        ("ping", None) => Command::Ping,
        ("quit", None) => Command::Quit,
        ("help", _) => Command::Help,
        ("join", None) => return Err("usage: /join ROOM".into()),
        ("msg", None) => return Err("usage: /msg NICK TEXT".into()),
        ("switch", None) => return Err("usage: /switch NAME (#room, @nick) or NUMBER".into()),
        _ => return Err(format!("unknown command /{name} (try /help)")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command("/join lobby\n"), Ok(Command::Join("lobby")));
        assert_eq!(parse_command("/leave"), Ok(Command::Leave(None)));
        assert_eq!(parse_command("/msg bob  hi there\r\n"), Ok(Command::Msg("bob", "hi there")));
        assert_eq!(parse_command("/msg bob"), Ok(Command::Msg("bob", "")));
        assert_eq!(parse_command("/who r"), Ok(Command::Who(Some("r"))));
        assert_eq!(parse_command("/switch #r"), Ok(Command::Switch("#r")));
        assert_eq!(parse_command("hello  world "), Ok(Command::Say("hello  world ")));
        assert_eq!(parse_command("//slash"), Ok(Command::Say("/slash")));
        assert_eq!(parse_command("  \n"), Ok(Command::Nothing));
        assert!(parse_command("/msg").is_err());
        assert!(parse_command("/join").is_err());
        assert!(parse_command("/switch").is_err());
        assert!(parse_command("/frobnicate").is_err());
    }
}
