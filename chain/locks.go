package chain

// Lock takes the advisory lock on object key for o. It reports whether o
// holds the lock afterwards: true if it was free or already o's, false if
// another owner holds it. Locks are not persisted; they are released by
// [Chain.Unlock] or when o releases its last [Handle] on the chain.
func (c *Chain) Lock(o *Owner, key uint64) bool {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	if cur, ok := c.locks[key]; ok {
		return cur == o
	}
	c.locks[key] = o
	return true
}

// Unlock releases o's lock on key. It returns [ErrNotLocked] if nobody
// holds key and [ErrNotLockOwner] if another owner does (the lock stays).
func (c *Chain) Unlock(o *Owner, key uint64) error {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	cur, ok := c.locks[key]
	switch {
	case !ok:
		return ErrNotLocked
	case cur != o:
		return ErrNotLockOwner
	}
	delete(c.locks, key)
	return nil
}

// LockHolder reports whether key is locked and by whom.
func (c *Chain) LockHolder(key uint64) (*Owner, bool) {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	o, ok := c.locks[key]
	return o, ok
}

// addUser counts one more handle of o on c.
func (c *Chain) addUser(o *Owner) {
	c.lockMu.Lock()
	c.users[o]++
	c.lockMu.Unlock()
}

// removeUser counts one handle of o less and releases o's locks when it
// was the last. It returns how many locks were released.
func (c *Chain) removeUser(o *Owner) int {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	c.users[o]--
	if c.users[o] > 0 {
		return 0
	}
	delete(c.users, o)
	n := 0
	for k, cur := range c.locks {
		if cur == o {
			delete(c.locks, k)
			n++
		}
	}
	return n
}
