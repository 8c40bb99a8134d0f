//! Simulated Bitbucket Cloud (stub).
