"""sleuth matrix: mitigations x environments x trials, with honest statistics (see docs/matrix.md)."""
