-- Snapshot kinds as a type: `crate::snapshot::Kind`. The CHECK of 0002 already admits only
-- 'active', 'view' and 'committed', so existing rows stay valid without a table rebuild; this
-- adds the one change of kind the domain allows (`Kind::can_become`): active -> committed.
-- Any other UPDATE of `kind` aborts its statement.
-- (0004 is the tasks migration; this file must be applied after it.)

CREATE TRIGGER snapshots_kind_transition
BEFORE UPDATE OF kind ON snapshots
WHEN OLD.kind <> NEW.kind AND NOT (OLD.kind = 'active' AND NEW.kind = 'committed')
BEGIN
    SELECT RAISE(ABORT, 'a snapshot''s kind may only change from active to committed');
END;
