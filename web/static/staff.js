// Staff console: every change goes through the JSON API with the session's CSRF token
// (staff/api.js). Each part wires the elements of its pages and does nothing elsewhere.
import "./staff/disputes.js";
import "./staff/booking.js";
import "./staff/session.js";
import "./staff/office.js";
