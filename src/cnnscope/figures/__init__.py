"""Results to pictures: pure functions returning RGB arrays or matplotlib figures."""
