package saml

import (
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/upstream"
	"strings"
	"sync"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

const (
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsDSig      = "http://www.w3.org/2000/09/xmldsig#"
	bearer      = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

	maxSubject = 255
	maxEmail   = 254
	maxName    = 200
	maxGroups  = 256
	maxGroup   = 256
)

// capture records the elements whose signature goxmldsig verified, as
// goxmldsig returns them: the signed content, not the document around it.
type capture struct {
	mu  sync.Mutex
	els []*etree.Element
}

func (c *capture) VerifySignature(vc *dsig.ValidationContext, el *etree.Element) error {
	out, err := vc.Validate(el)
	if err != nil {
		return fmt.Errorf("saml: signature: %w", err)
	}
	c.mu.Lock()
	c.els = append(c.els, out)
	c.mu.Unlock()
	return nil
}

// refusal is a verification failure with its audit reason.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.reason + ": " + fmt.Sprint(r.err) }
func (r *refusal) Unwrap() error { return r.err }

func refuse(reason string, format string, args ...any) error {
	return &refusal{reason: reason, err: fmt.Errorf(format, args...)}
}

// verify checks a SAML Response for our request requestID and returns the
// identity it asserts, or the audit reason of its refusal.
//
// crewjam/saml checks the signatures (with the IdP metadata's certificates),
// Destination, InResponseTo, issuers, status, the validity windows and
// decrypts encrypted assertions. On top of it (requirement 17):
//
//   - the response must hold exactly one assertion, anywhere in the
//     document (signature wrapping: an injected unsigned or copied assertion
//     is refused, never skipped);
//   - the assertion itself must be signed (unless AcceptResponseSignature),
//     and the identity is read from the element goxmldsig verified, not
//     from the surrounding document;
//   - an AudienceRestriction is required, and each one must list our
//     entity id (crewjam accepts an assertion without one);
//   - a bearer SubjectConfirmation is required, with InResponseTo equal to
//     our live request id, Recipient our ACS and an unexpired NotOnOrAfter;
//   - Conditions NotBefore/NotOnOrAfter checked against our clock, with a
//     two-minute skew.
func (p *Provider) verify(sp *saml.ServiceProvider, raw []byte, requestID string) (ext idp.ExternalIdentity, reason string, err error) {
	ext, err = p.verifyResponse(sp, raw, requestID)
	if err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			return ext, rf.reason, err
		}
		return ext, "assertion_invalid", err
	}
	return ext, "", nil
}

func (p *Provider) verifyResponse(sp *saml.ServiceProvider, raw []byte, requestID string) (ext idp.ExternalIdentity, err error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		return ext, refuse("response_malformed", "xml: %v", err)
	}
	root := doc.Root()
	if root.Tag != "Response" || root.NamespaceURI() != nsProtocol {
		return ext, refuse("response_malformed", "root is %s:%s, not a protocol Response", root.NamespaceURI(), root.Tag)
	}
	if n := countAssertions(root); n != 1 {
		return ext, refuse("assertion_count", "%d assertions in the response, want exactly 1", n)
	}
	if !p.cfg.AcceptResponseSignature {
		// Drop the Response's own signature: crewjam then requires (and
		// checks) a signature on the assertion itself.
		for _, ch := range root.ChildElements() {
			if ch.Tag == "Signature" && ch.NamespaceURI() == nsDSig {
				root.RemoveChild(ch)
			}
		}
		if buf, err := doc.WriteToBytes(); err == nil {
			raw = buf
		} else {
			return ext, refuse("response_malformed", "xml: %v", err)
		}
	}
	cp := &capture{}
	spc := *sp
	spc.SignatureVerifier = cp
	spc.AllowIDPInitiated = false
	spc.ValidateAudienceRestriction = func(a *saml.Assertion) error { return p.checkAudience(a) }
	assertion, err := parseGuarded(&spc, raw, requestID)
	if err != nil {
		return ext, err
	}
	// The assertion we use is the one whose signature was verified.
	verified, err := p.verifiedAssertion(cp, assertion)
	if err != nil {
		return ext, err
	}
	if err := p.checkAssertion(verified, requestID); err != nil {
		return ext, err
	}
	return p.identity(verified)
}

// parseGuarded runs crewjam's ParseXMLResponse, turning a panic on a
// malformed assertion (crewjam dereferences a missing Subject or
// Conditions) into a refusal.
func parseGuarded(sp *saml.ServiceProvider, raw []byte, requestID string) (a *saml.Assertion, err error) {
	defer func() {
		if v := recover(); v != nil {
			a, err = nil, refuse("assertion_invalid", "malformed assertion: %v", v)
		}
	}()
	a, err = sp.ParseXMLResponse(raw, []string{requestID}, sp.AcsURL)
	if err != nil {
		return nil, classify(err)
	}
	return a, nil
}

// classify maps crewjam's errors to audit reasons.
func classify(err error) error {
	var ire *saml.InvalidResponseError
	detail := err
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr
	}
	var rf *refusal
	if errors.As(detail, &rf) {
		return rf
	}
	msg := detail.Error()
	var bad saml.ErrBadStatus
	switch {
	case errors.As(detail, &bad):
		return refuse("upstream_status", "status %s", bad.Status)
	case strings.Contains(msg, "signature element not present"):
		return refuse("assertion_unsigned", "%v", detail)
	case strings.Contains(msg, "audience"):
		return refuse("audience_mismatch", "%v", detail)
	case strings.Contains(msg, "signature"), strings.Contains(msg, "Signature"):
		return refuse("signature_invalid", "%v", detail)
	case strings.Contains(msg, "InResponseTo"), strings.Contains(msg, "possible request IDs"):
		return refuse("request_id_mismatch", "%v", detail)
	case strings.Contains(msg, "expired"), strings.Contains(msg, "not yet valid"):
		return refuse("assertion_expired", "%v", detail)
	case strings.Contains(msg, "Destination"), strings.Contains(msg, "Recipient"):
		return refuse("destination_mismatch", "%v", detail)
	case strings.Contains(msg, "ssuer"):
		return refuse("issuer_mismatch", "%v", detail)
	case strings.Contains(msg, "decrypt"):
		return refuse("decryption_failed", "%v", detail)
	}
	return refuse("assertion_invalid", "%v", detail)
}

// countAssertions counts Assertion and EncryptedAssertion elements anywhere
// in the document.
func countAssertions(root *etree.Element) int {
	n := 0
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		if (el.Tag == "Assertion" || el.Tag == "EncryptedAssertion") && el.NamespaceURI() == nsAssertion {
			n++
		}
		for _, ch := range el.ChildElements() {
			walk(ch)
		}
	}
	walk(root)
	return n
}

// verifiedAssertion returns the assertion whose signature goxmldsig
// verified: its own, or with AcceptResponseSignature the one inside the
// verified Response.
func (p *Provider) verifiedAssertion(cp *capture, parsed *saml.Assertion) (*verifiedAssertion, error) {
	cp.mu.Lock()
	els := cp.els
	cp.mu.Unlock()
	var el *etree.Element
	for _, e := range els {
		switch {
		case e.Tag == "Assertion" && e.NamespaceURI() == nsAssertion:
			if el != nil {
				return nil, refuse("assertion_count", "several signed assertions")
			}
			el = e
		case e.Tag == "Response" && p.cfg.AcceptResponseSignature && el == nil:
			for _, ch := range e.ChildElements() {
				if ch.Tag == "Assertion" && ch.NamespaceURI() == nsAssertion {
					el = ch
				}
			}
		}
	}
	if el == nil {
		if p.cfg.AcceptResponseSignature && len(els) > 0 {
			// A signed Response around an encrypted assertion: crewjam
			// decrypted the one assertion the signed response holds.
			return &verifiedAssertion{Assertion: parsed}, nil
		}
		return nil, refuse("assertion_unsigned", "the assertion is not signed")
	}
	var a saml.Assertion
	if err := unmarshalElement(el, &a); err != nil {
		return nil, refuse("assertion_invalid", "signed assertion: %v", err)
	}
	if a.ID == "" || a.ID != parsed.ID {
		return nil, refuse("assertion_count", "the signed assertion is not the one parsed")
	}
	return &verifiedAssertion{Assertion: &a, el: el}, nil
}

type verifiedAssertion struct {
	*saml.Assertion
	el *etree.Element // nil when only the Response's signature covers it
}

func unmarshalElement(el *etree.Element, v any) error {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	buf, err := doc.WriteToBytes()
	if err != nil {
		return err
	}
	return xml.Unmarshal(buf, v)
}

// checkAudience requires at least one AudienceRestriction and our entity id
// in each (crewjam's own check accepts an assertion without any).
func (p *Provider) checkAudience(a *saml.Assertion) error {
	if a.Conditions == nil || len(a.Conditions.AudienceRestrictions) == 0 {
		return refuse("audience_missing", "no AudienceRestriction")
	}
	for _, ar := range a.Conditions.AudienceRestrictions {
		if ar.Audience.Value != p.cfg.EntityID {
			return refuse("audience_mismatch", "audience %q is not our entity id", ar.Audience.Value)
		}
	}
	return nil
}

// checkAssertion applies our checks to the verified assertion.
func (p *Provider) checkAssertion(a *verifiedAssertion, requestID string) error {
	now := p.cfg.Now()
	if a.el != nil {
		// Every Audience of each restriction, from the signed element (the
		// struct keeps one Audience per restriction).
		restrictions := 0
		for _, cond := range a.el.ChildElements() {
			if cond.Tag != "Conditions" || cond.NamespaceURI() != nsAssertion {
				continue
			}
			for _, ar := range cond.ChildElements() {
				if ar.Tag != "AudienceRestriction" || ar.NamespaceURI() != nsAssertion {
					continue
				}
				restrictions++
				ours := false
				for _, au := range ar.ChildElements() {
					if au.Tag == "Audience" && au.NamespaceURI() == nsAssertion && strings.TrimSpace(au.Text()) == p.cfg.EntityID {
						ours = true
					}
				}
				if !ours {
					return refuse("audience_mismatch", "an AudienceRestriction without our entity id")
				}
			}
		}
		if restrictions == 0 {
			return refuse("audience_missing", "no AudienceRestriction")
		}
	} else if err := p.checkAudience(a.Assertion); err != nil {
		return err
	}
	if a.Conditions == nil || a.Conditions.NotOnOrAfter.IsZero() {
		return refuse("assertion_invalid", "no Conditions NotOnOrAfter")
	}
	if !a.Conditions.NotBefore.IsZero() && now.Add(clockSkew).Before(a.Conditions.NotBefore) {
		return refuse("assertion_not_yet_valid", "NotBefore %s", a.Conditions.NotBefore)
	}
	if !now.Before(a.Conditions.NotOnOrAfter.Add(clockSkew)) {
		return refuse("assertion_expired", "Conditions NotOnOrAfter %s", a.Conditions.NotOnOrAfter)
	}
	if a.Subject == nil {
		return refuse("assertion_invalid", "no Subject")
	}
	confirmed := false
	for _, sc := range a.Subject.SubjectConfirmations {
		d := sc.SubjectConfirmationData
		if sc.Method != bearer || d == nil {
			continue
		}
		if d.InResponseTo != requestID {
			return refuse("request_id_mismatch", "SubjectConfirmationData InResponseTo is not our request")
		}
		if d.Recipient != p.acsURL.String() {
			return refuse("destination_mismatch", "Recipient %q is not our ACS", d.Recipient)
		}
		if d.NotOnOrAfter.IsZero() || !now.Before(d.NotOnOrAfter.Add(clockSkew)) {
			return refuse("assertion_expired", "SubjectConfirmationData NotOnOrAfter %s", d.NotOnOrAfter)
		}
		confirmed = true
	}
	if !confirmed {
		return refuse("assertion_invalid", "no bearer SubjectConfirmation")
	}
	if a.IssueInstant.IsZero() || a.IssueInstant.After(now.Add(clockSkew)) || now.Sub(a.IssueInstant) > requestTTL+clockSkew {
		return refuse("assertion_expired", "IssueInstant %s", a.IssueInstant)
	}
	return nil
}

// identity maps the verified assertion to the identity the idp links.
func (p *Provider) identity(a *verifiedAssertion) (idp.ExternalIdentity, error) {
	attrs := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vals []string
			for _, v := range at.Values {
				vals = append(vals, strings.TrimSpace(v.Value))
			}
			for _, k := range []string{at.Name, at.FriendlyName} {
				if k != "" {
					if _, seen := attrs[k]; !seen {
						attrs[k] = vals
					}
				}
			}
		}
	}
	m := p.cfg.Attributes
	pick := func(name string, defaults []string) []string {
		if name != "" {
			return attrs[name]
		}
		for _, d := range defaults {
			if v, ok := attrs[d]; ok {
				return v
			}
		}
		return nil
	}
	var sub string
	if m.Subject != "" {
		if v := attrs[m.Subject]; len(v) == 1 {
			sub = v[0]
		}
	} else if a.Subject != nil && a.Subject.NameID != nil {
		sub = strings.TrimSpace(a.Subject.NameID.Value)
	}
	if sub == "" || len(sub) > maxSubject || !upstream.Printable(sub) {
		return idp.ExternalIdentity{}, refuse("subject_missing", "no usable subject")
	}
	ext := idp.ExternalIdentity{Provider: p.cfg.Name, Subject: sub}
	if v := pick(m.Email, defaultEmailAttrs); len(v) > 0 && len(v[0]) <= maxEmail && upstream.Printable(v[0]) {
		ext.Email = v[0]
		ext.EmailVerified = p.cfg.TrustEmail
	}
	if v := pick(m.Name, defaultNameAttrs); len(v) > 0 {
		ext.Name = upstream.CleanText(v[0], maxName)
	}
	for _, g := range pick(m.Groups, defaultGroupAttrs) {
		if g != "" && len(g) <= maxGroup && upstream.Printable(g) && len(ext.Groups) < maxGroups {
			ext.Groups = append(ext.Groups, g)
		}
	}
	return ext, nil
}
