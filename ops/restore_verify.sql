-- Invariant checks after a restore (ops/restore_drill.sh), also safe to run read-only on production
-- (docs/runbooks/booking-failures.md): `psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f ops/restore_verify.sql`.
-- Prints one NOTICE per check; raises an error listing every failed check.
DO $$
DECLARE
    failures text[] := '{}';
    n bigint;
BEGIN
    -- The database's own guards are present and trusted (ARCHITECTURE.md, invariants 1 and 2).
    SELECT count(*) INTO n FROM pg_constraint
     WHERE contype = 'x' AND convalidated
       AND conname IN ('slot_no_overlap_per_practitioner', 'appt_no_overlap_per_citizen');
    IF n <> 2 THEN failures := failures || format('exclusion constraints present: %s of 2', n); END IF;
    SELECT count(*) INTO n FROM pg_indexes
     WHERE indexname IN ('appt_one_occupying_per_slot', 'outbox_feed_seq_unique');
    IF n <> 2 THEN failures := failures || format('partial unique indexes present: %s of 2', n); END IF;
    SELECT count(*) INTO n FROM pg_constraint WHERE NOT convalidated;
    IF n > 0 THEN failures := failures || format('%s constraints not validated', n); END IF;
    SELECT count(*) INTO n FROM pg_index WHERE NOT indisvalid;
    IF n > 0 THEN failures := failures || format('%s invalid indexes', n); END IF;
    RAISE NOTICE 'constraints and indexes checked';

    -- No double booking, whatever the constraints say: read the rows themselves.
    SELECT count(*) INTO n FROM booking_slot s
     WHERE s.status = 'booked'
       AND (SELECT count(*) FROM booking_appointment a
             WHERE a.slot_id = s.id AND a.status IN ('booked', 'arrived', 'fulfilled', 'noshow')) <> 1;
    IF n > 0 THEN failures := failures || format('%s booked slots without exactly one occupying appointment', n); END IF;
    SELECT count(*) INTO n FROM booking_appointment a JOIN booking_slot s ON s.id = a.slot_id
     WHERE a.status IN ('booked', 'arrived', 'fulfilled', 'noshow') AND s.status <> 'booked';
    IF n > 0 THEN failures := failures || format('%s occupying appointments on a slot that is not booked', n); END IF;
    SELECT count(*) INTO n FROM booking_appointment a JOIN booking_appointment b
        ON a.citizen_id = b.citizen_id AND a.id < b.id
       AND tstzrange(a.start, a."end") && tstzrange(b.start, b."end")
     WHERE a.status IN ('booked', 'arrived', 'fulfilled', 'noshow')
       AND b.status IN ('booked', 'arrived', 'fulfilled', 'noshow');
    IF n > 0 THEN failures := failures || format('%s overlapping occupying appointments of one patient', n); END IF;
    SELECT count(*) INTO n FROM booking_slot a JOIN booking_slot b
        ON a.practitioner_id = b.practitioner_id AND a.id < b.id
       AND tstzrange(a.start, a."end") && tstzrange(b.start, b."end")
     WHERE a.status <> 'cancelled' AND b.status <> 'cancelled';
    IF n > 0 THEN failures := failures || format('%s overlapping published slots of one practitioner', n); END IF;
    RAISE NOTICE 'bookings checked';

    -- The outbox agrees with what it describes, and no webhook cursor points past the feed's head.
    SELECT count(*) INTO n FROM booking_outboxevent e JOIN booking_appointment a ON a.id = e.appointment_id
     WHERE e.clinic_id <> a.clinic_id;
    IF n > 0 THEN failures := failures || format('%s outbox events of another clinic than their appointment', n); END IF;
    SELECT count(*) INTO n FROM booking_outboxevent e JOIN booking_slot s ON s.id = e.slot_id
     WHERE e.clinic_id <> s.clinic_id;
    IF n > 0 THEN failures := failures || format('%s outbox events of another clinic than their slot', n); END IF;
    SELECT count(*) INTO n FROM sync_webhooksubscription
     WHERE last_delivered_seq > (SELECT coalesce(max(feed_seq), 0) FROM booking_outboxevent);
    IF n > 0 THEN failures := failures || format('%s webhook cursors beyond the feed head', n); END IF;
    RAISE NOTICE 'outbox checked';

    IF array_length(failures, 1) > 0 THEN
        RAISE EXCEPTION 'restore verification failed: %', array_to_string(failures, '; ');
    END IF;
    RAISE NOTICE 'restore verification: all invariants hold';
END
$$;
