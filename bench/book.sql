-- One booking as raw SQL: the same writes as booking.services.appointment_book (issue 7, scenario 2).
-- Each transaction takes the next (slot, citizen) pair staged by `booking_common.py stage-pgbench`
-- (a sequence hands them out: disjoint slots, no contention). The compare-and-set is real: the
-- inserts run only when the UPDATE changed the row (:ok = 1); otherwise the transaction rolls back.
-- The appointment's reference starts with '0', a character the application's references never use
-- (booking.models.new_reference), so it is unique and cannot collide with a real one.
SELECT n, slot_id, clinic_id FROM bench_pgbench_pairs WHERE n = (SELECT nextval('bench_pgbench_seq')) \gset
BEGIN;
WITH u AS (
  UPDATE booking_slot SET status = 'booked', holder_id = NULL, hold_expires = NULL, hold_token = '',
         version = version + 1, updated_at = now()
  WHERE id = :slot_id AND status = 'free' AND (hold_expires IS NULL OR hold_expires < now())
  RETURNING version, start, "end"
) SELECT count(*) AS ok, max(version) AS slot_version FROM u \gset
\if :ok
INSERT INTO booking_appointment (slot_id, citizen_id, clinic_id, start, "end", reason, status, channel,
    reference, idempotency_key, external_id, cancel_reason, version, created_at, updated_at)
  SELECT s.id, p.citizen_id, s.clinic_id, s.start, s."end", p.reason, 'booked', 'api',
    '0' || lpad(p.n::text, 9, '0'), NULL, '', '', 1, now(), now()
  FROM booking_slot s JOIN bench_pgbench_pairs p ON p.n = :n WHERE s.id = :slot_id
  RETURNING id AS appointment_id \gset
INSERT INTO booking_outboxevent (created_at, kind, channel, payload, notify_state, appointment_id, clinic_id, slot_id)
  VALUES (now(), 'appointment.booked', 'api',
          jsonb_build_object('slot_version', (:slot_version)::int, 'appointment_version', 1),
          'pending', :appointment_id, :clinic_id, :slot_id);
COMMIT;
\else
ROLLBACK;
\endif
