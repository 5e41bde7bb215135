//! Channel: wires sources → encoders → packagers → bus → pushers.
