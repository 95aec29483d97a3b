//! Loom models of the spawn-hooks core (see README.md).
