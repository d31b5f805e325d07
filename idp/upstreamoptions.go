package idp

// The options every upstream provider kind shares, embedded in each kind's
// Options (their JSON stays flat: the button fields first, the account
// fields last, as the kinds have always written them).

// UpstreamButton is how a provider appears: its id and its login button.
type UpstreamButton struct {
	// Name is the provider's id in URLs (lower-case letters, digits, -).
	Name string `json:"name"`
	// DisplayName is the button's label.
	DisplayName string `json:"display_name,omitempty"`
	// IconURL is the button's icon.
	IconURL string `json:"icon_url,omitempty"`
}

// ProviderName implements KindOptions.
func (b *UpstreamButton) ProviderName() string { return b.Name }

// SetProviderName implements KindOptions.
func (b *UpstreamButton) SetProviderName(name string) { b.Name = name }

// SetButtonOption sets display_name or icon_url; ok is false for any other
// name.
func (b *UpstreamButton) SetButtonOption(name string, args []string) (ok bool, err error) {
	switch name {
	case "display_name":
		return true, StringArg(name, args, &b.DisplayName)
	case "icon_url":
		return true, StringArg(name, args, &b.IconURL)
	}
	return false, nil
}

// UpstreamAccounts says who may sign in through a provider and how
// upstream identities become local accounts.
type UpstreamAccounts struct {
	// Allow rules: any that is set must match.
	AllowEmailDomains []string `json:"allow_email_domains,omitempty"`
	AllowGroups       []string `json:"allow_groups,omitempty"`
	AllowSubjects     []string `json:"allow_subjects,omitempty"`
	// LinkByEmail links to an existing local account with the same verified email.
	LinkByEmail bool `json:"link_by_email,omitempty"`
	// NoAccountCreation refuses users who have no linked local account.
	NoAccountCreation bool `json:"no_account_creation,omitempty"`
}

// SetAccountOption sets an allow rule, link_by_email or
// no_account_creation; ok is false for any other name.
func (a *UpstreamAccounts) SetAccountOption(name string, args []string) (ok bool, err error) {
	switch name {
	case "allow_email_domains":
		return true, ListArg(name, args, &a.AllowEmailDomains)
	case "allow_groups":
		return true, ListArg(name, args, &a.AllowGroups)
	case "allow_subjects":
		return true, ListArg(name, args, &a.AllowSubjects)
	case "link_by_email":
		return true, FlagArg(name, args, &a.LinkByEmail)
	case "no_account_creation":
		return true, FlagArg(name, args, &a.NoAccountCreation)
	}
	return false, nil
}

// UpstreamConfigOf is the record a provider is built with, from its button
// and account options.
func UpstreamConfigOf(b UpstreamButton, a UpstreamAccounts) UpstreamConfig {
	return UpstreamConfig{Name: b.Name, DisplayName: b.DisplayName, IconURL: b.IconURL,
		Allow:       AllowRules{EmailDomains: a.AllowEmailDomains, Groups: a.AllowGroups, Subjects: a.AllowSubjects},
		LinkByEmail: a.LinkByEmail, NoAccountCreation: a.NoAccountCreation}
}
