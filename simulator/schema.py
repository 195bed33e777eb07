"""BuildDesk's operational CRM schema, as the seed analysis of its Supabase migrations lists it.

Three parts, applied in order so that a bulk history load is fast:

1. ``TABLES``: every table with its primary key, column types, defaults and CHECK
   constraints on enumerations (as the migrations write them);
2. ``CONSTRAINTS``: foreign keys and secondary indexes, added after the bulk ``COPY``
   (adding a foreign key validates every row, so an orphan in generated data fails here);
3. ``TRIGGERS``: ``updated_at`` maintenance and the operational ``update_lead_score()``.

The one deliberate difference from production: the trigger functions read the simulator's
clock (``builddesk_sim.now`` session setting) when a session sets it, and ``now()`` otherwise.
That keeps ``updated_at`` consistent with simulated business time; for any other session the
behaviour is exactly the real one.

``leads`` exists in two versions in the real migrations: ``lead_status`` (lead tracking system)
and a later one with ``status`` plus construction-project columns. ``leads_variant`` picks one.
"""

from __future__ import annotations

LEADS_VARIANTS = ("lead_status", "status")

from contract.enums import ENUMS, TRIGGER_SCORE_WEIGHTS  # noqa: E402,F401
from contract.references import FOREIGN_KEYS  # noqa: E402,F401


def _check(table: str, column: str) -> str:
    values = ", ".join(f"'{v}'" for v in ENUMS[(table, column)])
    return f"CHECK ({column} IN ({values}))"


def _leads_columns(variant: str) -> str:
    if variant not in LEADS_VARIANTS:
        raise ValueError(f"unknown leads variant {variant!r}: use one of {', '.join(LEADS_VARIANTS)}")
    if variant == "lead_status":
        status = f"lead_status TEXT NOT NULL DEFAULT 'new' {_check('leads', 'lead_status')},"
        extra = ""
    else:
        status = f"status TEXT NOT NULL DEFAULT 'new' {_check('leads', 'status')},"
        extra = f"""
  project_type TEXT {_check('leads', 'project_type')},
  estimated_budget DECIMAL(15,2),
  project_timeline TEXT,
  project_address TEXT,
  project_city TEXT,
  project_state TEXT,"""
    return f"""
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID,
  email TEXT NOT NULL UNIQUE,
  first_name TEXT,
  last_name TEXT,
  company_name TEXT,
  phone TEXT,
  job_title TEXT,
  lead_source TEXT {_check('leads', 'lead_source')},
  {status}
  priority TEXT DEFAULT 'medium' {_check('leads', 'priority')},
  lead_score INTEGER NOT NULL DEFAULT 0,
  interest_type TEXT {_check('leads', 'interest_type')},
  requested_demo BOOLEAN DEFAULT false,
  requested_sales_contact BOOLEAN DEFAULT false,
  downloaded_resource BOOLEAN DEFAULT false,
  viewed_pricing BOOLEAN DEFAULT false,
  started_signup BOOLEAN DEFAULT false,
  assigned_to UUID,
  converted_to_user_id UUID,
  conversion_value DECIMAL(15,2),
  utm_source TEXT,
  utm_medium TEXT,
  utm_campaign TEXT,
  utm_content TEXT,
  utm_term TEXT,
  landing_page TEXT,
  referrer TEXT,{extra}
  notes TEXT,
  tags TEXT[] DEFAULT '{{}}',
  first_seen_at TIMESTAMPTZ DEFAULT now(),
  last_activity_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()"""


def tables_sql(leads_variant: str = "lead_status") -> str:
    c = _check
    return f"""
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
  id UUID PRIMARY KEY,
  email TEXT UNIQUE,
  phone TEXT,
  encrypted_password TEXT,
  email_confirmed_at TIMESTAMPTZ,
  last_sign_in_at TIMESTAMPTZ,
  raw_app_meta_data JSONB,
  raw_user_meta_data JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.companies (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name TEXT NOT NULL,
  industry TEXT,
  company_size TEXT,
  address TEXT,
  city TEXT,
  state TEXT,
  zip_code TEXT,
  phone TEXT,
  website TEXT,
  subscription_tier TEXT,
  subscription_status TEXT,
  trial_ends_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.user_profiles (
  id UUID PRIMARY KEY,
  company_id UUID,
  email TEXT NOT NULL,
  first_name TEXT,
  last_name TEXT,
  phone TEXT,
  role TEXT NOT NULL DEFAULT 'office_staff' {c('user_profiles', 'role')},
  is_active BOOLEAN NOT NULL DEFAULT true,
  hourly_rate DECIMAL(10,2),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.leads ({_leads_columns(leads_variant)}
);

CREATE TABLE public.lead_activities (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  lead_id UUID NOT NULL,
  activity_type TEXT NOT NULL {c('lead_activities', 'activity_type')},
  activity_data JSONB DEFAULT '{{}}',
  page_url TEXT,
  ip_address INET,
  user_agent TEXT,
  country TEXT,
  city TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.demo_requests (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  lead_id UUID,
  email TEXT NOT NULL,
  first_name TEXT,
  last_name TEXT,
  company_name TEXT,
  phone TEXT,
  demo_type TEXT DEFAULT 'standard_30min' {c('demo_requests', 'demo_type')},
  preferred_date DATE,
  preferred_time TEXT,
  timezone TEXT,
  message TEXT,
  scheduled_at TIMESTAMPTZ,
  calendar_event_id TEXT,
  meeting_url TEXT,
  status TEXT NOT NULL DEFAULT 'requested' {c('demo_requests', 'status')},
  completed_at TIMESTAMPTZ,
  cancelled_at TIMESTAMPTZ,
  cancellation_reason TEXT,
  follow_up_sent BOOLEAN DEFAULT false,
  follow_up_sent_at TIMESTAMPTZ,
  converted_to_paid BOOLEAN DEFAULT false,
  converted_at TIMESTAMPTZ,
  assigned_sales_rep UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.sales_contact_requests (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  lead_id UUID,
  email TEXT NOT NULL,
  first_name TEXT,
  last_name TEXT,
  company_name TEXT,
  phone TEXT,
  inquiry_type TEXT {c('sales_contact_requests', 'inquiry_type')},
  message TEXT,
  estimated_budget TEXT,
  timeline TEXT {c('sales_contact_requests', 'timeline')},
  status TEXT NOT NULL DEFAULT 'new' {c('sales_contact_requests', 'status')},
  contacted_at TIMESTAMPTZ,
  assigned_to UUID,
  assigned_at TIMESTAMPTZ,
  notes TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.contacts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  email TEXT,
  phone TEXT,
  mobile_phone TEXT,
  job_title TEXT,
  department TEXT,
  company_name TEXT,
  address TEXT,
  city TEXT,
  state TEXT,
  zip_code TEXT,
  country TEXT DEFAULT 'US',
  website TEXT,
  linkedin_profile TEXT,
  contact_type TEXT DEFAULT 'prospect' {c('contacts', 'contact_type')},
  relationship_status TEXT DEFAULT 'active' {c('contacts', 'relationship_status')},
  preferred_contact_method TEXT DEFAULT 'email' {c('contacts', 'preferred_contact_method')},
  time_zone TEXT,
  birthday DATE,
  anniversary DATE,
  lead_source TEXT,
  last_contact_date DATE,
  next_contact_date DATE,
  assigned_to UUID,
  notes TEXT,
  tags TEXT[] DEFAULT '{{}}',
  custom_fields JSONB DEFAULT '{{}}',
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.opportunities (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  project_type TEXT,
  lead_id UUID,
  contact_id UUID,
  project_id UUID,
  estimated_value NUMERIC NOT NULL DEFAULT 0,
  actual_value NUMERIC,
  probability_percent INTEGER DEFAULT 50 CHECK (probability_percent BETWEEN 0 AND 100),
  stage TEXT NOT NULL DEFAULT 'prospecting' {c('opportunities', 'stage')},
  pipeline_position INTEGER,
  expected_close_date DATE,
  bid_required BOOLEAN DEFAULT false,
  bid_due_date DATE,
  proposal_sent_date DATE,
  contract_signed_date DATE,
  competitor_names TEXT[],
  our_competitive_advantage TEXT,
  key_decision_factors TEXT[],
  risk_level TEXT DEFAULT 'medium' {c('opportunities', 'risk_level')},
  risk_factors TEXT[],
  mitigation_strategies TEXT,
  account_manager UUID,
  estimator UUID,
  project_manager UUID,
  close_date DATE,
  close_reason TEXT,
  notes TEXT,
  tags TEXT[] DEFAULT '{{}}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.pipeline_templates (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  deal_type TEXT DEFAULT 'standard' {c('pipeline_templates', 'deal_type')},
  is_default BOOLEAN DEFAULT false,
  is_active BOOLEAN DEFAULT true,
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.pipeline_stages (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  template_id UUID NOT NULL,
  company_id UUID NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  stage_order INTEGER NOT NULL,
  color_code TEXT,
  probability_weight INTEGER DEFAULT 0 CHECK (probability_weight BETWEEN 0 AND 100),
  is_final_stage BOOLEAN DEFAULT false,
  is_won_stage BOOLEAN DEFAULT false,
  is_lost_stage BOOLEAN DEFAULT false,
  auto_tasks JSONB DEFAULT '[]',
  required_fields JSONB DEFAULT '[]',
  expected_duration_days INTEGER,
  conversion_rate DECIMAL(5,2),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (template_id, stage_order)
);

CREATE TABLE public.deals (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  lead_id UUID,
  contact_id UUID,
  pipeline_template_id UUID,
  current_stage_id UUID,
  name TEXT NOT NULL,
  description TEXT,
  deal_type TEXT DEFAULT 'standard' {c('deals', 'deal_type')},
  estimated_value DECIMAL(15,2) DEFAULT 0,
  actual_value DECIMAL(15,2),
  weighted_value DECIMAL(15,2),
  days_in_pipeline INTEGER,
  expected_close_date DATE,
  actual_close_date DATE,
  primary_contact_id UUID,
  account_manager_id UUID,
  sales_rep_id UUID,
  competitors JSONB DEFAULT '[]',
  competitive_advantage TEXT,
  key_success_factors JSONB DEFAULT '[]',
  risk_level TEXT DEFAULT 'medium' {c('deals', 'risk_level')},
  risk_factors JSONB DEFAULT '[]',
  mitigation_strategies TEXT,
  status TEXT NOT NULL DEFAULT 'active' {c('deals', 'status')},
  priority TEXT DEFAULT 'medium' {c('deals', 'priority')},
  source TEXT,
  won_reason TEXT,
  lost_reason TEXT,
  lost_to_competitor TEXT,
  custom_fields JSONB DEFAULT '{{}}',
  tags TEXT[] DEFAULT '{{}}',
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.deal_stage_history (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  deal_id UUID NOT NULL,
  from_stage_id UUID,
  to_stage_id UUID NOT NULL,
  moved_by UUID,
  moved_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  notes TEXT,
  days_in_previous_stage INTEGER,
  auto_moved BOOLEAN DEFAULT false,
  value_before DECIMAL(15,2),
  value_after DECIMAL(15,2),
  probability_before INTEGER,
  probability_after INTEGER
);

CREATE TABLE public.deal_activities (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  deal_id UUID NOT NULL,
  activity_type TEXT NOT NULL {c('deal_activities', 'activity_type')},
  subject TEXT,
  description TEXT,
  outcome TEXT,
  next_action TEXT,
  due_date TIMESTAMPTZ,
  completed_at TIMESTAMPTZ,
  duration_minutes INTEGER,
  assigned_to UUID,
  created_by UUID,
  contact_id UUID,
  document_id UUID,
  metadata JSONB DEFAULT '{{}}',
  is_completed BOOLEAN DEFAULT false,
  is_automated BOOLEAN DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.crm_activities (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  activity_type TEXT NOT NULL {c('crm_activities', 'activity_type')},
  activity_date TIMESTAMPTZ NOT NULL DEFAULT now(),
  description TEXT,
  outcome TEXT,
  duration_minutes INTEGER,
  lead_id UUID,
  opportunity_id UUID,
  created_by UUID,
  company_id UUID NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.email_campaigns (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  campaign_name TEXT NOT NULL UNIQUE,
  campaign_description TEXT,
  campaign_type TEXT NOT NULL {c('email_campaigns', 'campaign_type')},
  trigger_type TEXT NOT NULL DEFAULT 'manual' {c('email_campaigns', 'trigger_type')},
  trigger_conditions JSONB DEFAULT '{{}}',
  trigger_event TEXT,
  subject_line TEXT NOT NULL,
  preview_text TEXT,
  from_name TEXT DEFAULT 'BuildDesk',
  from_email TEXT DEFAULT 'hello@builddesk.com',
  reply_to TEXT,
  html_content TEXT,
  text_content TEXT,
  template_id TEXT,
  template_variables JSONB DEFAULT '{{}}',
  send_delay_minutes INTEGER DEFAULT 0,
  send_at_time TIME,
  send_on_days INTEGER[],
  sequence_name TEXT,
  sequence_order INTEGER,
  ab_test_enabled BOOLEAN DEFAULT false,
  ab_test_variant TEXT,
  ab_test_traffic_percentage INTEGER CHECK (ab_test_traffic_percentage BETWEEN 0 AND 100),
  is_active BOOLEAN DEFAULT true,
  total_sent INTEGER DEFAULT 0,
  total_delivered INTEGER DEFAULT 0,
  total_opened INTEGER DEFAULT 0,
  total_clicked INTEGER DEFAULT 0,
  total_unsubscribed INTEGER DEFAULT 0,
  total_bounced INTEGER DEFAULT 0,
  total_complained INTEGER DEFAULT 0,
  created_by UUID,
  last_sent_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.email_sends (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  campaign_id UUID,
  user_id UUID,
  recipient_email TEXT NOT NULL,
  recipient_name TEXT,
  subject TEXT,
  from_email TEXT,
  email_provider TEXT {c('email_sends', 'email_provider')},
  email_provider_id TEXT,
  email_provider_data JSONB DEFAULT '{{}}',
  status TEXT NOT NULL DEFAULT 'pending' {c('email_sends', 'status')},
  sent_at TIMESTAMPTZ,
  delivered_at TIMESTAMPTZ,
  opened_at TIMESTAMPTZ,
  first_opened_at TIMESTAMPTZ,
  last_opened_at TIMESTAMPTZ,
  open_count INTEGER DEFAULT 0,
  clicked_at TIMESTAMPTZ,
  first_clicked_at TIMESTAMPTZ,
  last_clicked_at TIMESTAMPTZ,
  click_count INTEGER DEFAULT 0,
  links_clicked TEXT[],
  unsubscribed_at TIMESTAMPTZ,
  bounced_at TIMESTAMPTZ,
  bounce_type TEXT {c('email_sends', 'bounce_type')},
  bounce_reason TEXT,
  complained_at TIMESTAMPTZ,
  error_message TEXT,
  error_code TEXT,
  retry_count INTEGER DEFAULT 0,
  max_retries INTEGER DEFAULT 3,
  next_retry_at TIMESTAMPTZ,
  send_metadata JSONB DEFAULT '{{}}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.email_queue (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  campaign_id UUID,
  user_id UUID,
  recipient_email TEXT NOT NULL,
  scheduled_for TIMESTAMPTZ NOT NULL,
  priority INTEGER DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  status TEXT NOT NULL DEFAULT 'pending' {c('email_queue', 'status')},
  attempts INTEGER DEFAULT 0,
  last_attempt_at TIMESTAMPTZ,
  email_send_id UUID,
  queue_metadata JSONB DEFAULT '{{}}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.email_clicks (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email_send_id UUID NOT NULL,
  url TEXT NOT NULL,
  link_text TEXT,
  clicked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  ip_address INET,
  user_agent TEXT,
  country TEXT,
  city TEXT,
  device_type TEXT,
  utm_source TEXT,
  utm_medium TEXT,
  utm_campaign TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.email_unsubscribes (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID,
  email TEXT NOT NULL,
  unsubscribe_type TEXT NOT NULL DEFAULT 'all' {c('email_unsubscribes', 'unsubscribe_type')},
  reason TEXT {c('email_unsubscribes', 'reason')},
  reason_detail TEXT,
  unsubscribed_from_email_id UUID,
  unsubscribed_via TEXT {c('email_unsubscribes', 'unsubscribed_via')},
  is_active BOOLEAN DEFAULT true,
  resubscribed_at TIMESTAMPTZ,
  unsubscribed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.email_preferences (
  user_id UUID PRIMARY KEY,
  marketing_emails BOOLEAN DEFAULT true,
  product_updates BOOLEAN DEFAULT true,
  newsletter BOOLEAN DEFAULT true,
  trial_nurture BOOLEAN DEFAULT true,
  billing_notifications BOOLEAN DEFAULT true,
  email_frequency TEXT DEFAULT 'normal' {c('email_preferences', 'email_frequency')},
  digest_enabled BOOLEAN DEFAULT false,
  digest_frequency TEXT DEFAULT 'weekly' {c('email_preferences', 'digest_frequency')},
  quiet_hours_enabled BOOLEAN DEFAULT false,
  quiet_hours_start TIME,
  quiet_hours_end TIME,
  timezone TEXT DEFAULT 'America/New_York',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.sales_quotas (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  user_id UUID NOT NULL,
  quota_period TEXT NOT NULL {c('sales_quotas', 'quota_period')},
  start_date DATE NOT NULL,
  end_date DATE NOT NULL,
  revenue_target DECIMAL(15,2) DEFAULT 0,
  deals_target INTEGER DEFAULT 0,
  calls_target INTEGER DEFAULT 0,
  meetings_target INTEGER DEFAULT 0,
  territory TEXT,
  deal_types TEXT[],
  is_active BOOLEAN DEFAULT true,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CHECK (end_date >= start_date)
);

CREATE TABLE public.lead_routing_rules (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  priority INTEGER DEFAULT 0,
  is_active BOOLEAN DEFAULT true,
  conditions JSONB NOT NULL DEFAULT '{{}}',
  assign_to_user_id UUID,
  assign_to_team TEXT,
  set_priority TEXT {c('lead_routing_rules', 'set_priority')},
  add_tags TEXT[],
  auto_create_tasks JSONB DEFAULT '[]',
  use_round_robin BOOLEAN DEFAULT false,
  round_robin_users UUID[],
  last_assigned_user_id UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.pipeline_metrics (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  template_id UUID,
  metric_date DATE NOT NULL,
  period_type TEXT NOT NULL {c('pipeline_metrics', 'period_type')},
  deals_created INTEGER DEFAULT 0,
  deals_won INTEGER DEFAULT 0,
  deals_lost INTEGER DEFAULT 0,
  deals_active INTEGER DEFAULT 0,
  total_pipeline_value DECIMAL(15,2) DEFAULT 0,
  weighted_pipeline_value DECIMAL(15,2) DEFAULT 0,
  won_value DECIMAL(15,2) DEFAULT 0,
  lost_value DECIMAL(15,2) DEFAULT 0,
  average_deal_size DECIMAL(15,2),
  average_cycle_time DECIMAL(8,2),
  win_rate DECIMAL(5,2),
  conversion_rate DECIMAL(5,2),
  deals_moved_forward INTEGER DEFAULT 0,
  deals_moved_backward INTEGER DEFAULT 0,
  stages_velocity JSONB DEFAULT '{{}}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (company_id, template_id, metric_date, period_type)
);

CREATE TABLE public.estimates (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  opportunity_id UUID,
  estimate_number TEXT NOT NULL,
  title TEXT,
  total_amount DECIMAL(15,2) NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'draft' {c('estimates', 'status')},
  valid_until DATE,
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (company_id, estimate_number)
);

CREATE TABLE public.tasks (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id UUID NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  status TEXT NOT NULL DEFAULT 'open' {c('tasks', 'status')},
  priority TEXT DEFAULT 'medium' {c('tasks', 'priority')},
  due_date DATE,
  completed_at TIMESTAMPTZ,
  assigned_to UUID,
  created_by UUID,
  deal_id UUID,
  opportunity_id UUID,
  contact_id UUID,
  lead_id UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


INDEXES_SQL = """
CREATE INDEX idx_leads_email ON public.leads(email);
CREATE INDEX idx_leads_status ON public.leads({status_col});
CREATE INDEX idx_leads_score ON public.leads(lead_score DESC);
CREATE INDEX idx_leads_created_at ON public.leads(created_at DESC);
CREATE INDEX idx_leads_assigned_to ON public.leads(assigned_to);
CREATE INDEX idx_leads_priority ON public.leads(priority);
CREATE INDEX idx_leads_updated_at ON public.leads(updated_at);
CREATE INDEX idx_lead_activities_lead_id ON public.lead_activities(lead_id);
CREATE INDEX idx_lead_activities_type ON public.lead_activities(activity_type);
CREATE INDEX idx_lead_activities_created_at ON public.lead_activities(created_at);
CREATE INDEX idx_demo_requests_lead_id ON public.demo_requests(lead_id);
CREATE INDEX idx_demo_requests_email ON public.demo_requests(email);
CREATE INDEX idx_demo_requests_status ON public.demo_requests(status);
CREATE INDEX idx_demo_requests_scheduled_at ON public.demo_requests(scheduled_at);
CREATE INDEX idx_demo_requests_created_at ON public.demo_requests(created_at);
CREATE INDEX idx_sales_contacts_lead_id ON public.sales_contact_requests(lead_id);
CREATE INDEX idx_sales_contacts_email ON public.sales_contact_requests(email);
CREATE INDEX idx_sales_contacts_status ON public.sales_contact_requests(status);
CREATE INDEX idx_sales_contacts_assigned_to ON public.sales_contact_requests(assigned_to);
CREATE INDEX idx_sales_contacts_created_at ON public.sales_contact_requests(created_at);
CREATE INDEX idx_contacts_company_id ON public.contacts(company_id);
CREATE INDEX idx_contacts_contact_type ON public.contacts(contact_type);
CREATE INDEX idx_contacts_assigned_to ON public.contacts(assigned_to);
CREATE INDEX idx_contacts_created_at ON public.contacts(created_at);
CREATE INDEX idx_opportunities_company_id ON public.opportunities(company_id);
CREATE INDEX idx_opportunities_stage ON public.opportunities(stage);
CREATE INDEX idx_opportunities_account_manager ON public.opportunities(account_manager);
CREATE INDEX idx_opportunities_created_at ON public.opportunities(created_at);
CREATE INDEX idx_deals_company_stage ON public.deals(company_id, current_stage_id);
CREATE INDEX idx_deals_sales_rep ON public.deals(sales_rep_id);
CREATE INDEX idx_deals_close_date ON public.deals(expected_close_date) WHERE status = 'active';
CREATE INDEX idx_deal_stage_history_deal ON public.deal_stage_history(deal_id, moved_at);
CREATE INDEX idx_deal_activities_deal ON public.deal_activities(deal_id);
CREATE INDEX idx_pipeline_stages_template ON public.pipeline_stages(template_id, stage_order);
CREATE INDEX idx_crm_activities_lead_id ON public.crm_activities(lead_id);
CREATE INDEX idx_crm_activities_opportunity_id ON public.crm_activities(opportunity_id);
CREATE INDEX idx_crm_activities_created_by ON public.crm_activities(created_by);
CREATE INDEX idx_crm_activities_company_id ON public.crm_activities(company_id);
CREATE INDEX idx_email_campaigns_name ON public.email_campaigns(campaign_name);
CREATE INDEX idx_email_campaigns_type ON public.email_campaigns(campaign_type);
CREATE INDEX idx_email_campaigns_sequence ON public.email_campaigns(sequence_name, sequence_order);
CREATE INDEX idx_email_campaigns_active ON public.email_campaigns(is_active);
CREATE INDEX idx_email_sends_campaign ON public.email_sends(campaign_id);
CREATE INDEX idx_email_sends_user ON public.email_sends(user_id);
CREATE INDEX idx_email_sends_email ON public.email_sends(recipient_email);
CREATE INDEX idx_email_sends_status ON public.email_sends(status);
CREATE INDEX idx_email_sends_sent_at ON public.email_sends(sent_at);
CREATE INDEX idx_email_sends_provider_id ON public.email_sends(email_provider, email_provider_id);
CREATE INDEX idx_email_queue_scheduled ON public.email_queue(scheduled_for) WHERE status = 'pending';
CREATE INDEX idx_email_queue_status ON public.email_queue(status);
CREATE INDEX idx_email_queue_user ON public.email_queue(user_id);
CREATE INDEX idx_email_queue_priority ON public.email_queue(priority);
CREATE INDEX idx_email_clicks_send ON public.email_clicks(email_send_id);
CREATE INDEX idx_email_clicks_url ON public.email_clicks(url);
CREATE INDEX idx_email_clicks_clicked_at ON public.email_clicks(clicked_at);
CREATE INDEX idx_email_unsubscribes_email ON public.email_unsubscribes(email);
CREATE INDEX idx_email_unsubscribes_user ON public.email_unsubscribes(user_id);
CREATE INDEX idx_email_unsubscribes_active ON public.email_unsubscribes(is_active);
CREATE INDEX idx_sales_quotas_user ON public.sales_quotas(user_id, start_date);
CREATE INDEX idx_tasks_company ON public.tasks(company_id);
"""

# Tables with an updated_at column maintained by the update_updated_at_column() trigger.
UPDATED_AT_TABLES: tuple[str, ...] = (
    "auth.users", "companies", "user_profiles", "leads", "demo_requests", "sales_contact_requests",
    "contacts", "opportunities", "pipeline_templates", "pipeline_stages", "deals",
    "deal_activities", "crm_activities", "email_campaigns", "email_sends", "email_queue",
    "email_unsubscribes", "email_preferences", "sales_quotas", "lead_routing_rules",
    "estimates", "tasks",
)

TRIGGERS_SQL_HEAD = """
CREATE OR REPLACE FUNCTION public.builddesk_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('builddesk_sim.now', true), '')::timestamptz, now())
$$;

CREATE OR REPLACE FUNCTION public.update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at = public.builddesk_now();
  RETURN NEW;
END;
$$;

-- The operational lead scoring trigger, as in the lead tracking migration. Its CASE spells the
-- email activities 'email_opened' / 'email_clicked' while the app records 'email_open' /
-- 'email_click': email engagement never scores. Kept on purpose: the warehouse reports it.
CREATE OR REPLACE FUNCTION public.update_lead_score() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  score_change INTEGER := 0;
BEGIN
  CASE NEW.activity_type
    WHEN 'demo_request' THEN score_change := 50;
    WHEN 'pricing_viewed' THEN score_change := 20;
    WHEN 'signup_started' THEN score_change := 30;
    WHEN 'resource_downloaded' THEN score_change := 15;
    WHEN 'email_opened' THEN score_change := 5;
    WHEN 'email_clicked' THEN score_change := 10;
    WHEN 'page_view' THEN score_change := 1;
    ELSE score_change := 0;
  END CASE;

  UPDATE public.leads
     SET lead_score = lead_score + score_change,
         last_activity_at = NEW.created_at
   WHERE id = NEW.lead_id;

  RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_update_lead_score
  AFTER INSERT ON public.lead_activities
  FOR EACH ROW EXECUTE FUNCTION public.update_lead_score();
"""


def qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


def constraints_sql(leads_variant: str = "lead_status") -> str:
    parts = []
    for table, column, ref, on_delete in FOREIGN_KEYS:
        name = f"{table.split('.')[-1]}_{column}_fkey"
        parts.append(
            f"ALTER TABLE {qualified(table)} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            f"REFERENCES {qualified(ref)}(id) ON DELETE {on_delete};"
        )
    status_col = "lead_status" if leads_variant == "lead_status" else "status"
    parts.append(INDEXES_SQL.format(status_col=status_col))
    return "\n".join(parts)


def triggers_sql() -> str:
    parts = [TRIGGERS_SQL_HEAD]
    for table in UPDATED_AT_TABLES:
        short = table.split(".")[-1]
        parts.append(
            f"CREATE TRIGGER update_{short}_updated_at BEFORE UPDATE ON {qualified(table)} "
            f"FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();"
        )
    return "\n".join(parts)


from contract.tables import SOURCE_TABLES  # noqa: E402,F401  (the warehouse contract lists the tables)
