//! The job spec's closed sets of words (driver, restart policy, protocol, address mode), read from strings with an
//! error that lists what is accepted: `unknown policy "sometimes" (want no, on-failure or always)`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string-valued enum with `as_str`, `FromStr`, `Display` and serde impls.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, $want:literal, { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The word the spec uses for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(word: &str) -> Result<$name, String> {
                match word {
                    $($word => Ok($name::$variant),)+
                    _ => Err(format!(concat!("unknown ", $what, " {:?} (want ", $want, ")"), word)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let word = String::deserialize(deserializer)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

word_enum!(
    /// Which driver runs a task.
    DriverKind, "driver", "docker or exec", {
        /// A Docker container (bollard over the engine's unix socket).
        Docker = "docker",
        /// A process on the host, optionally chrooted into `rootfs`.
        Exec = "exec",
    }
);

word_enum!(
    /// When roster restarts an exited task.
    #[derive(Default)]
    RestartPolicy, "policy", "no, on-failure or always", {
        /// Never: Docker's default, so a task that exits stays down unless its spec asks otherwise.
        #[default]
        No = "no",
        /// After a non-zero exit.
        OnFailure = "on-failure",
        /// After any exit, except one that an explicit stop caused.
        Always = "always",
    }
);

word_enum!(
    /// A port's transport protocol.
    #[derive(Default)]
    Protocol, "protocol", "tcp or udp", {
        /// TCP (the default).
        #[default]
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
);

word_enum!(
    /// Which address a service is registered with.
    #[derive(Default)]
    AddressMode, "address_mode", "host or container", {
        /// The node's address and the port's `host_port` (the default).
        #[default]
        Host = "host",
        /// The container's IP and the port's `container_port`.
        Container = "container",
    }
);
