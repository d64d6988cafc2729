//! A CRM test server with fixtures (work in progress).
