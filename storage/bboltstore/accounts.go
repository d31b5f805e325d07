package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// emailKey is the accounts_by_email key: the lower-cased address. Accounts
// are expected to carry a normalized address already; the store folds case
// again so that two spellings of one address can never be two accounts.
func emailKey(email string) []byte {
	return []byte(strings.ToLower(email))
}

func checkAccount(a storage.Account) error {
	if a.ID == "" {
		return errors.New("bboltstore: account without id")
	}
	return nil
}

// CreateAccount implements storage.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if err := checkAccount(a); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		accounts := bucket(tx, bktAccounts)
		byEmail := bucket(tx, bktAccountsByEmail)
		if accounts.Get([]byte(a.ID)) != nil {
			return fmt.Errorf("bboltstore: account id: %w", storage.ErrAlreadyExists)
		}
		if a.Email != "" {
			if byEmail.Get(emailKey(a.Email)) != nil {
				return fmt.Errorf("bboltstore: account email: %w", storage.ErrAlreadyExists)
			}
			if err := byEmail.Put(emailKey(a.Email), []byte(a.ID)); err != nil {
				return err
			}
		}
		return putJSON(accounts, []byte(a.ID), a)
	})
}

// GetAccount implements storage.Accounts.
func (s *Store) GetAccount(ctx context.Context, id string) (storage.Account, error) {
	var a storage.Account
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(bucket(tx, bktAccounts), []byte(id), &a)
	})
	if err != nil {
		return storage.Account{}, err
	}
	return a, nil
}

// GetAccountByEmail implements storage.Accounts; the match ignores case.
func (s *Store) GetAccountByEmail(ctx context.Context, email string) (storage.Account, error) {
	var a storage.Account
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if email == "" {
			return storage.ErrNotFound
		}
		id := bucket(tx, bktAccountsByEmail).Get(emailKey(email))
		if id == nil {
			return storage.ErrNotFound
		}
		return getJSON(bucket(tx, bktAccounts), id, &a)
	})
	if err != nil {
		return storage.Account{}, err
	}
	return a, nil
}

// UpdateAccount implements storage.Accounts.
func (s *Store) UpdateAccount(ctx context.Context, a storage.Account) error {
	if err := checkAccount(a); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		accounts := bucket(tx, bktAccounts)
		byEmail := bucket(tx, bktAccountsByEmail)
		var old storage.Account
		if err := getJSON(accounts, []byte(a.ID), &old); err != nil {
			return err
		}
		oldKey, newKey := emailKey(old.Email), emailKey(a.Email)
		if string(oldKey) != string(newKey) {
			if a.Email != "" {
				if owner := byEmail.Get(newKey); owner != nil && string(owner) != a.ID {
					return fmt.Errorf("bboltstore: account email: %w", storage.ErrAlreadyExists)
				}
			}
			if old.Email != "" {
				if err := byEmail.Delete(oldKey); err != nil {
					return err
				}
			}
			if a.Email != "" {
				if err := byEmail.Put(newKey, []byte(a.ID)); err != nil {
					return err
				}
			}
		}
		return putJSON(accounts, []byte(a.ID), a)
	})
}

// ListAccounts implements storage.Accounts, ordered by id.
func (s *Store) ListAccounts(ctx context.Context) ([]storage.Account, error) {
	var out []storage.Account
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return bucket(tx, bktAccounts).ForEach(func(_, v []byte) error {
			var a storage.Account
			if err := decode(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LinkIdentity implements storage.Accounts. ErrNotFound when the account
// does not exist; linking a pair again to the same account succeeds.
func (s *Store) LinkIdentity(ctx context.Context, provider, subject, accountID string) error {
	if provider == "" || subject == "" {
		return errors.New("bboltstore: identity without provider or subject")
	}
	if err := checkComposite("provider", provider); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if bucket(tx, bktAccounts).Get([]byte(accountID)) == nil {
			return storage.ErrNotFound
		}
		b := bucket(tx, bktIdentities)
		k := lp(provider, []byte(subject))
		if owner := b.Get(k); owner != nil {
			if string(owner) == accountID {
				return nil
			}
			return fmt.Errorf("bboltstore: identity: %w", storage.ErrAlreadyExists)
		}
		return b.Put(k, []byte(accountID))
	})
}

// AccountByIdentity implements storage.Accounts.
func (s *Store) AccountByIdentity(ctx context.Context, provider, subject string) (storage.Account, error) {
	var a storage.Account
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if len(provider) > maxComposite {
			return storage.ErrNotFound
		}
		id := bucket(tx, bktIdentities).Get(lp(provider, []byte(subject)))
		if id == nil {
			return storage.ErrNotFound
		}
		return getJSON(bucket(tx, bktAccounts), id, &a)
	})
	if err != nil {
		return storage.Account{}, err
	}
	return a, nil
}
