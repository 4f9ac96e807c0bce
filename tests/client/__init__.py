"""Tests of the public API, Phone, Call and ExotelWebClient, against the in-process sandbox and
test-double servers on 127.0.0.1."""
