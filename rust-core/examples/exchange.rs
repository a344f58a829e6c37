//! Exchanges values with a Perl process through one share.
//!
//! ```text
//! exchange KEY MESSAGE [TIMEOUT_SECONDS]
//! ```
//!
//! Creates the share at KEY if needed, stores MESSAGE, then waits (polling
//! under the shared lock) until another process stores something else, and
//! prints that value on stdout. Exits 1 on error, 2 on a timeout. A Perl
//! script on the other side, using IPC::ShareLite (0.17 or this project's):
//!
//! ```perl
//! my $share = IPC::ShareLite->new(-key => $key) or die;
//! print $share->fetch;          # MESSAGE
//! $share->store("hello from perl");
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sharelite::{Key, LockKind, OpenOptions, Wait};

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: exchange KEY MESSAGE [TIMEOUT_SECONDS]");
        return Ok(ExitCode::from(64));
    }
    // A key_t: 32 bits on Linux, macOS and Solaris, 64 on the BSDs. Hex
    // gives the key's bits (0xfffffffe is -2 where a key_t has 32 bits).
    let key: Key = match args[1].strip_prefix("0x") {
        Some(hex) => {
            let bits = u64::from_str_radix(hex, 16)?;
            let key = bits as Key;
            if key as u64 & (u64::MAX >> (64 - Key::BITS)) != bits {
                return Err(format!("key {} does not fit a {}-bit key_t", args[1], Key::BITS).into());
            }
            key
        }
        None => args[1].parse()?,
    };
    let timeout = Duration::from_secs_f64(args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10.0));

    let mut share = OpenOptions::new().key(key).create(true).open()?;
    share.store(args[2].as_bytes())?;
    let stored_version = share.version()?;

    let start = Instant::now();
    let mut buf = Vec::new();
    while start.elapsed() < timeout {
        if share.version()? != stored_version {
            // Read under an explicit shared lock, as a longer reader would.
            share.lock(LockKind::Shared, Wait::Forever)?;
            share.fetch_into(&mut buf)?;
            share.unlock()?;
            println!("{}", String::from_utf8_lossy(&buf));
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("exchange: nothing new was stored within {timeout:?}");
    Ok(ExitCode::from(2))
}

fn main() -> ExitCode {
    run().unwrap_or_else(|e| {
        eprintln!("exchange: {e}");
        ExitCode::from(1)
    })
}
