//! Addresses as users write them in pools and peers, with errors that say which part is wrong.
