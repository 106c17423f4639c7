//! An AWS API fixture server on 127.0.0.1: answers the STS, EC2, IAM and S3 calls the aws
//! provider makes with pages of a configured size (moto ignores some page sizes), and
//! injects throttling or server errors on demand. It counts every request it answers.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the fixture serves and how it misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Security groups, VPCs and roles to serve.
    pub security_groups: usize,
    /// VPCs to serve.
    pub vpcs: usize,
    /// IAM roles to serve.
    pub roles: usize,
    /// Items per page, whatever the client asks for.
    pub page: usize,
    /// Action → number of first calls answered with a throttling error.
    pub throttle: HashMap<String, usize>,
    /// Actions that always fail with a server error.
    pub fail: Vec<String>,
}

#[derive(Default)]
struct Seen {
    requests: u64,
    by_action: HashMap<String, u64>,
}

/// A running fixture server; it stops with the test process.
pub struct AwsFixture {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    seen: Arc<Mutex<Seen>>,
}

impl AwsFixture {
    /// Starts the server on a free loopback port.
    pub fn start(spec: Spec) -> AwsFixture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let spec = Arc::new(spec);
        let s = seen.clone();
        crate::accept_each(listener, move |conn| serve(conn, &spec, &s));
        AwsFixture { endpoint, seen }
    }

    /// Requests answered so far, errors included.
    pub fn requests(&self) -> u64 {
        self.seen.lock().unwrap().requests
    }

    /// Requests answered so far for one action (`ListBuckets` for S3).
    pub fn calls(&self, action: &str) -> u64 {
        *self
            .seen
            .lock()
            .unwrap()
            .by_action
            .get(action)
            .unwrap_or(&0)
    }
}

fn serve(conn: TcpStream, spec: &Spec, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone the socket"));
    let mut conn = conn;
    while let Some(req) = crate::read_request(&mut reader) {
        let (target, body) = (req.target, req.body);
        let mut params: HashMap<String, String> = form(&String::from_utf8_lossy(&body));
        if let Some((_, q)) = target.split_once('?') {
            params.extend(form(q));
        }
        let action = params
            .get("Action")
            .cloned()
            .unwrap_or_else(|| "ListBuckets".into());
        let n = {
            let mut s = seen.lock().unwrap();
            s.requests += 1;
            let n = s.by_action.entry(action.clone()).or_default();
            *n += 1;
            *n
        };
        let denied =
            action == "AssumeRole" && params.get("RoleArn").is_some_and(|r| r.contains("denied"));
        let (status, xml) = if denied {
            (
                403,
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to \
                 perform sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>"
                    .to_string(),
            )
        } else if spec.fail.contains(&action) {
            (500, error("InternalError", "injected failure"))
        } else if spec.throttle.get(&action).is_some_and(|t| n as usize <= *t) {
            (
                503,
                error("RequestLimitExceeded", "Request limit exceeded."),
            )
        } else {
            (200, respond(&action, &params, spec))
        };
        let headers = [("Content-Type", "text/xml".to_string())];
        if !crate::write_response(&mut conn, status, &headers, xml.as_bytes()) {
            return;
        }
    }
}

fn form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error(code: &str, message: &str) -> String {
    format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>\
         <RequestID>r</RequestID></Response>"
    )
}

/// One page of `total` items from the token `after` (an index), and the next token.
fn page(
    total: usize,
    size: usize,
    token: Option<&String>,
) -> (std::ops::Range<usize>, Option<usize>) {
    let start: usize = token.and_then(|t| t.parse().ok()).unwrap_or(0);
    let end = (start + size.max(1)).min(total);
    (start..end, (end < total).then_some(end))
}

fn respond(action: &str, p: &HashMap<String, String>, spec: &Spec) -> String {
    let ec2 = |tag: &str, set: &str, items: String, next: Option<usize>| {
        let next = next
            .map(|n| format!("<nextToken>{n}</nextToken>"))
            .unwrap_or_default();
        format!(
            "<{tag}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId>\
             <{set}>{items}</{set}>{next}</{tag}Response>"
        )
    };
    let iam = |tag: &str, list: &str, items: String, next: Option<usize>| {
        let (truncated, marker) = match next {
            Some(n) => ("true", format!("<Marker>{n}</Marker>")),
            None => ("false", String::new()),
        };
        format!(
            "<{tag}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{tag}Result>\
             <IsTruncated>{truncated}</IsTruncated>{marker}<{list}>{items}</{list}></{tag}Result>\
             <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{tag}Response>"
        )
    };
    match action {
        "GetCallerIdentity" => "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/t</Arn><UserId>AIDA</UserId>\
             <Account>123456789012</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            .into(),
        "AssumeRole" => "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleResult><Credentials><AccessKeyId>ASIAFIXTURE</AccessKeyId>\
             <SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>\
             <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser>\
             <AssumedRoleId>AROA:driftwatch</AssumedRoleId>\
             <Arn>arn:aws:sts::123456789012:assumed-role/ok/driftwatch</Arn></AssumedRoleUser>\
             </AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>\
             </AssumeRoleResponse>"
            .into(),
        "DescribeSecurityGroups" => {
            let (range, next) = page(spec.security_groups, spec.page, p.get("NextToken"));
            let items: String = range
                .map(|i| {
                    format!(
                        "<item><ownerId>123456789012</ownerId><groupId>sg-{i:04}</groupId>\
                         <groupName>g{i}</groupName><groupDescription>d</groupDescription>\
                         <vpcId>vpc-0000</vpcId><ipPermissions/><ipPermissionsEgress/></item>"
                    )
                })
                .collect();
            ec2("DescribeSecurityGroups", "securityGroupInfo", items, next)
        }
        "DescribeVpcs" => {
            let (range, next) = page(spec.vpcs, spec.page, p.get("NextToken"));
            let items: String = range
                .map(|i| {
                    format!(
                        "<item><vpcId>vpc-{i:04}</vpcId><cidrBlock>10.{i}.0.0/16</cidrBlock>\
                         <isDefault>false</isDefault><ownerId>123456789012</ownerId></item>"
                    )
                })
                .collect();
            ec2("DescribeVpcs", "vpcSet", items, next)
        }
        "DescribeSubnets" => ec2("DescribeSubnets", "subnetSet", String::new(), None),
        "DescribeInstances" => ec2("DescribeInstances", "reservationSet", String::new(), None),
        "ListRoles" => {
            let (range, next) = page(spec.roles, spec.page, p.get("Marker"));
            let items: String = range
                .map(|i| {
                    format!(
                        "<member><Path>/</Path><RoleName>r{i}</RoleName><RoleId>AROA{i}</RoleId>\
                         <Arn>arn:aws:iam::123456789012:role/r{i}</Arn>\
                         <CreateDate>2024-01-01T00:00:00Z</CreateDate></member>"
                    )
                })
                .collect();
            iam("ListRoles", "Roles", items, next)
        }
        "ListRoleTags" => iam("ListRoleTags", "Tags", String::new(), None),
        "ListAttachedRolePolicies" => iam(
            "ListAttachedRolePolicies",
            "AttachedPolicies",
            String::new(),
            None,
        ),
        "ListPolicies" => iam("ListPolicies", "Policies", String::new(), None),
        "ListBuckets" => "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Owner><ID>o</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>"
            .into(),
        other => error("InvalidAction", &format!("the fixture does not serve {other}")),
    }
}
