package adminapi

import (
	"context"
	"errors"
	"github.com/mcpauth/caddy-mcpauth/internal/adminwire"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func viewUser(a storage.Account) adminwire.UserView {
	return adminwire.UserView{
		ID: a.ID, Email: a.Email, Name: a.Name, EmailVerified: a.EmailVerified,
		HasPassword: a.PasswordHash != "", Groups: a.Groups, Disabled: a.Disabled,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, PasswordChangedAt: a.PasswordChangedAt,
	}
}

// userInputError maps the idp's refusals of operator input to 4xx.
func userInputError(err error) error {
	for _, e := range []error{password.ErrTooShort, password.ErrTooLong, password.ErrCommon, password.ErrInvalid} {
		if errors.Is(err, e) {
			return Errorf(http.StatusBadRequest, "%v", e)
		}
	}
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return Errorf(http.StatusConflict, "an account with that email already exists")
	case errors.Is(err, storage.ErrNotFound):
		return Errorf(http.StatusNotFound, "user not found")
	case errors.Is(err, idp.ErrNotEmail):
		return Errorf(http.StatusBadRequest, "not an email address")
	}
	return Errorf(http.StatusInternalServerError, "%v", err)
}

func (h *Handler) serveUsers(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) error {
	st := h.store
	login := h.accounts
	if rt.id == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			accts, err := st.ListAccounts(ctx)
			if err != nil {
				return storeError("users", err)
			}
			slices.SortFunc(accts, func(x, y storage.Account) int { return strings.Compare(x.Email, y.Email) })
			out := make([]adminwire.UserView, 0, len(accts))
			for _, acct := range accts {
				out = append(out, viewUser(acct))
			}
			return writeJSON(w, http.StatusOK, out)
		case http.MethodPost:
			var in struct {
				Email    string `json:"email"`
				Name     string `json:"name"`
				Password string `json:"password"`
			}
			if err := readJSON(r, &in); err != nil {
				return err
			}
			if in.Email == "" || in.Password == "" {
				return Errorf(http.StatusBadRequest, "email and password are required")
			}
			acct, err := login.CreateAccount(ctx, in.Email, in.Name, in.Password)
			if err != nil {
				return userInputError(err)
			}
			h.actions.Info("mcp_auth: account created by the operator", "account", acct.ID)
			return writeJSON(w, http.StatusCreated, viewUser(acct))
		}
		return Errorf(http.StatusMethodNotAllowed, "method %s not allowed (use GET or POST)", r.Method)
	}
	if rt.action == "" {
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		acct, err := st.GetAccount(ctx, rt.id)
		if err != nil {
			return storeError("user", err)
		}
		return writeJSON(w, http.StatusOK, viewUser(acct))
	}
	if err := allow(r, http.MethodPost); err != nil {
		return err
	}
	switch rt.action {
	case "disable", "enable", "password", "revoke-sessions":
	default:
		return Errorf(http.StatusNotFound, "unknown user action %q", rt.action)
	}
	if _, err := st.GetAccount(ctx, rt.id); err != nil {
		return storeError("user", err)
	}
	resp := map[string]any{"id": rt.id}
	// Each idp call decides and audits its consequences: disabling an
	// account, setting its password or ending its sessions ends its sessions
	// and grants ("account.disabled", "account.password_changed",
	// "session.revoked", each with "subject.revoked").
	switch rt.action {
	case "disable", "enable":
		disabled := rt.action == "disable"
		n, err := login.SetAccountDisabled(ctx, rt.id, disabled)
		if err != nil {
			return userInputError(err)
		}
		if disabled {
			resp["grants_revoked"] = n
		}
		resp["disabled"] = disabled
	case "password":
		var in struct {
			Password string `json:"password"`
		}
		if err := readJSON(r, &in); err != nil {
			return err
		}
		if in.Password == "" {
			return Errorf(http.StatusBadRequest, "password is required")
		}
		n, err := login.SetPassword(ctx, rt.id, in.Password)
		if err != nil {
			return userInputError(err)
		}
		resp["grants_revoked"] = n
	case "revoke-sessions":
		ns, n, err := login.RevokeSessions(ctx, rt.id)
		if err != nil {
			return storeError("sessions", err)
		}
		resp["sessions_revoked"], resp["grants_revoked"] = ns, n
	}
	h.actions.Info("mcp_auth: operator action on an account", "account", rt.id, "action", rt.action)
	return writeJSON(w, http.StatusOK, resp)
}
