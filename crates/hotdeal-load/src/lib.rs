//! The load-test runner of hotdeal (in progress).
