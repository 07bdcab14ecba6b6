"""Pure feature functions over a state record: extract before update, then update. No storage, no broker."""
