use thiserror::Error;

/// What can go wrong writing back to the API server.
#[derive(Debug, Error)]
pub enum Error {
    /// The API server refused or did not answer an Event write. The Event is written again on
    /// the next call that still calls for it.
    #[error("writing a {reason} Event about {regarding}: {source}")]
    WriteEvent {
        reason: String,
        regarding: String,
        #[source]
        source: kube::Error,
    },
}
