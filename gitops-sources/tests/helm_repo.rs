//! Helm source tests against a real static HTTP server (filled in next).
