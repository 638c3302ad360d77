package signer

// PagesWritten returns how many pages the state file's write transactions
// have written since the store was opened (bbolt's TxStats.PageCount):
// what a commit costs the disk, whatever else the machine is doing.
func (s *Store) PagesWritten() int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageCount()
}
